"""`python -m benchmarks.retraining`: more training runs of a truth's cells, scored against its other seeds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import kendalltau

from benchmarks import retraining
from benchmarks.core.tables import Table
from hypernas.errors import HypernasError


def cells(by_seed: dict[int, list[float]]) -> Table:
    return Table([f"cell{i}" for i in range(len(next(iter(by_seed.values()))))], by_seed)


@pytest.mark.filterwarnings("ignore:An input array is constant")  # the constant mean, on purpose
def test_runs_equal_to_the_truth_get_tau_one_and_noise_lowers_it():
    accs = [0.5 + 0.04 * i for i in range(10)]
    # seed 2 is the truth exactly (a perfect scorer); seed 3 reverses it; their mean is constant
    table = cells({0: accs, 1: accs, 2: accs, 3: [1.4 - v for v in accs]})
    result = retraining.run(retraining.Config(table=table))
    one, two = result["rows"]
    assert (one["runs"], one["combinations"], two["runs"], two["combinations"]) == (1, 2, 2, 1)
    tau_mean, tau_min, tau_max = one["kendall_tau"]
    assert tau_max == pytest.approx(1.0) and tau_min == pytest.approx(-1.0) and tau_mean == pytest.approx(0.0)
    assert two["kendall_tau"][0] == 0.0  # a constant scorer ranks nothing
    assert "| one more training run | 2 |" in retraining.markdown(result)


def test_the_shipped_six_seeds_split_into_a_truth_and_its_scorers():
    result = retraining.run(retraining.Config(truth="nb201_mnist1d_dev"))
    assert sorted(result["truth"].by_seed) == [0, 1] and sorted(result["extra"].by_seed) == [2, 3, 4, 5]
    assert [r["runs"] for r in result["rows"]] == [1, 2, 3, 4]
    for r in result["rows"]:
        assert -1 <= r["kendall_tau"][1] <= r["kendall_tau"][0] <= r["kendall_tau"][2] <= 1
    assert "split-half estimate" in retraining.markdown(result)


def test_a_missing_seed_or_no_seed_left_is_a_clear_error(capsys):
    table = cells({0: [0.5, 0.6, 0.7], 1: [0.5, 0.6, 0.7]})
    with pytest.raises(HypernasError, match=r"no seed 7 \(its seeds: \[0, 1\]\)"):
        retraining.run(retraining.Config(table=table, truth_seeds=(0, 7)))
    with pytest.raises(HypernasError, match="no run is left"):
        retraining.run(retraining.Config(table=table, truth_seeds=(0, 1)))
    with pytest.raises(SystemExit):
        retraining.main(["--truth-seeds", "0,x"])
    assert "--truth-seeds must be a non-empty list of integers" in capsys.readouterr().err


def test_the_perfect_scorer_tau_is_recovered_from_noisy_runs_alone():
    # Cells with a known expected accuracy, every run that plus Gaussian noise: the extrapolation
    # from 1-4 extra runs must find the tau of the expected accuracy itself against the truth.
    rng = np.random.default_rng(0)
    expected = rng.normal(size=1500)
    runs = {s: expected + rng.normal(scale=0.7, size=expected.size) for s in range(6)}
    truth, extra = cells({s: list(runs[s]) for s in (0, 1)}), cells({s: list(runs[s]) for s in (2, 3, 4, 5)})
    rows = retraining.retraining_rows(truth, extra)
    exact = kendalltau(expected, (runs[0] + runs[1]) / 2)[0]
    assert rows[-1]["kendall_tau"][0] < exact - 0.02  # four runs are still short of it
    assert retraining.perfect_scorer_tau(rows) == pytest.approx(exact, abs=0.02)
    low, high = retraining.perfect_scorer_interval(truth, extra, resamples=20)
    assert low < retraining.perfect_scorer_tau(rows) < high and high - low < 0.1
    assert retraining.perfect_scorer_tau(rows[:1]) is None  # one point fits no curve
