"""How sure the finals are: intervals of trained accuracy, ties with the best, the pick among them, racing."""

from __future__ import annotations

import numpy as np
import pytest

from hypernas.certainty import accuracy_intervals, pick, pooled_sd, race, tied_with_best, wilson


def test_one_run_each_gives_the_test_samples_wilson_interval():
    (a, b) = accuracy_intervals([[0.96], [0.90]], test_samples=1000)
    assert a.kind == b.kind == "test sample" and a.runs == 1
    assert (a.low, a.high) == pytest.approx(wilson(0.96, 1000)) and a.low < 0.96 < a.high
    assert (a.high - a.low) == pytest.approx(2 * 1.96 * np.sqrt(0.96 * 0.04 / 1000), rel=0.05)  # about +-1.2 points
    assert tied_with_best([a, b]) == [True, False]


def test_seed_runs_pool_their_noise_over_the_finalists():
    runs = [[0.95, 0.96, 0.97], [0.94], [0.90, 0.92]]
    sd, df = pooled_sd(runs)
    assert df == 3 and sd == pytest.approx(np.sqrt((2 * 0.0001 + 0.0002) / 3))
    first, second, third = accuracy_intervals(runs, 1000)
    assert first.kind == "seeds" and first.mean == pytest.approx(0.96)
    assert (second.high - second.low) == pytest.approx(np.sqrt(3) * (first.high - first.low))  # 1 run vs 3
    assert pooled_sd([[0.9], [0.8]]) is None


def test_the_pick_among_the_tied_follows_the_rule():
    tied = [0, 2, 3]
    params, scores = [900, 100, 500, 500], [0.1, 0.9, 0.3, 0.8]
    assert pick(tied, "smallest", params, None, scores) == 2  # 500 parameters, before 3 (the same) by order
    assert pick(tied, "score", params, None, scores) == 3
    assert pick(tied, "fastest", params, lambda i: {0: 1.0, 2: 3.0, 3: 2.0}[i], scores) == 0
    with pytest.raises(ValueError, match="smallest, fastest, score"):
        pick(tied, "prettiest", params, None, scores)


def test_racing_trains_the_contenders_until_the_leader_stands_alone():
    rng = np.random.default_rng(0)
    expected = [0.960, 0.930, 0.958]  # the second is truly worse; the first and third are not apart
    runs = [[e + rng.normal(0, 0.003)] for e in expected]
    trained = []

    def train_more(i: int) -> float:
        trained.append(i)
        return expected[i] + rng.normal(0, 0.003)

    spent = race(runs, budget=12, train_more=train_more, test_samples=1000)
    assert spent == len(trained) <= 12 and 1 not in trained[3:]  # the clearly worse one drops out of the race
    assert [len(r) for r in runs] == [1 + trained.count(i) for i in range(3)]
    # separate ones stop the race at once
    assert race([[0.99, 0.991], [0.50, 0.51]], budget=5, train_more=pytest.fail, test_samples=1000) == 0
