"""The benchmarks' statistics: one tau convention, paired intervals whose verdicts mean what they say, noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from benchmarks.core.stats import (
    Interval,
    kendall_tau,
    noise_ceiling,
    paired_bootstrap,
    ranking_metrics,
    spearman_rho,
    truth_noise,
)


def test_a_constant_side_ranks_nothing_rather_than_nan():
    assert kendall_tau([1, 1, 1], [1, 2, 3]) == 0.0 and spearman_rho([0.5, 0.6], [2, 2]) == 0.0
    assert kendall_tau([1], [2]) == 0.0 and kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert ranking_metrics([1, 1, 1], [0.1, 0.5, 0.9])["kendall_tau"] == 0.0


def scorers(noise_a: float, noise_b: float, seed: int, n: int = 200):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n)
    return truth, truth + rng.normal(scale=noise_a, size=n), truth + rng.normal(scale=noise_b, size=n)


def lead(truth, a, b) -> Interval:
    return paired_bootstrap(lambda c, _r: kendall_tau(a[c], truth[c]) - kendall_tau(b[c], truth[c]), len(truth),
                            resamples=300)


def test_two_scorers_that_differ_by_noise_alone_are_within_noise():
    # Same noise level, independent draws: any difference is chance. Most seeds must say so.
    verdicts = [lead(*scorers(1.0, 1.0, seed)).verdict() for seed in range(10)]
    assert verdicts.count("within noise") >= 8


def test_a_truly_better_scorer_is_ahead_and_the_other_behind():
    truth, good, bad = scorers(0.3, 1.5, seed=0)
    assert lead(truth, good, bad).verdict() == "ahead"
    assert lead(truth, bad, good).verdict() == "behind"
    gap = lead(truth, bad, good)  # for a gap (lower is better) the verdict turns round
    assert gap.verdict(higher_is_better=False) == "ahead"


def test_resampling_the_runs_widens_the_interval_when_the_runs_disagree():
    rng = np.random.default_rng(1)
    runs = rng.normal(0.0, 1.0, size=8)  # one value per hypernetwork run, no architecture effect
    one = paired_bootstrap(lambda c, r: float(runs[:1].mean()), 50, 1)
    many = paired_bootstrap(lambda c, r: float(runs[r].mean()), 50, 8)
    assert one.low == one.high and many.high - many.low > 0.5 and many.verdict() == "within noise"


def test_the_noise_ceiling_is_the_tau_of_the_expected_accuracy():
    rng = np.random.default_rng(0)
    expected = rng.normal(size=3000)
    for seeds in (2, 5):
        runs = {s: list(expected + rng.normal(scale=0.8, size=expected.size)) for s in range(seeds)}
        exact = kendalltau(expected, np.mean(list(runs.values()), axis=0))[0]
        assert noise_ceiling(runs) == pytest.approx(exact, abs=0.02)
    assert noise_ceiling({0: [0.1, 0.2]}) is None


def test_truth_noise_measures_the_top_half():
    rng = np.random.default_rng(0)
    expected = np.linspace(0.90, 0.98, 400)  # the top half spans 0.94..0.98: sd of about 0.0116
    runs = {s: list(expected + rng.normal(scale=0.01, size=400)) for s in range(9)}
    noise = truth_noise(runs)
    assert noise.seeds == 9 and noise.one_run == pytest.approx(0.01, rel=0.1)
    assert noise.noise_of_mean == pytest.approx(noise.one_run / 3)
    assert noise.ratio == pytest.approx(noise.noise_of_mean / noise.spread)
    # the seeds that would make the noise of a mean half the spread, with the spread that is left after the noise
    between = noise.spread**2 - noise.one_run**2 / 9
    assert noise.seeds_needed == int(np.ceil(3 * noise.one_run**2 / between))
    with pytest.raises(ValueError):
        truth_noise({0: [0.5, 0.6]})
