"""`python -m benchmarks.fidelity`, small: every strategy at equal cost, real rung trainings, cached."""

from __future__ import annotations

import pytest
from test_bench_budget import tiny

from benchmarks import fidelity
from hypernas.errors import OptionError
from hypernas.rungs import cost


def test_every_strategy_picks_within_the_same_epochs_and_the_rungs_are_cached(tmp_path):
    cache = tmp_path / "cache.csv"
    config = fidelity.Config(judged=tiny(tmp_path, trainings=1, limit=16), epochs=14, rungs=(1, 2), pool=4, keep=0.5,
                             resamples=10, cache=str(cache))
    assert cost(4, (1, 2), 0.5) == 8  # 4 one-epoch rungs, 2 two-epoch ones: one final training is left
    (result,) = fidelity.run(config)
    trained = cache.read_text().splitlines()
    assert len(trained) > 1 and {line.split(",")[3] for line in trained[1:]} == {"1", "2"}
    for budget, r in result["results"].items():
        assert set(r["gaps"]) == {*fidelity.STRATEGIES, "random"}
        assert all(0 <= g <= 1 for gaps in r["gaps"].values() for g in gaps)
        assert set(r["intervals"]) == set(fidelity.STRATEGIES) - {"rungs"}
    assert "| none | 16 | rungs |" in fidelity.markdown([result])
    fidelity.run(config)  # a rerun trains nothing: every rung is in the cache
    assert cache.read_text().splitlines() == trained
    with pytest.raises(OptionError, match="no final training fits"):
        fidelity.Config(epochs=10, pool=12)
