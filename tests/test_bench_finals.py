"""`python -m benchmarks.finals` and `python -m benchmarks.init`, small: every strategy reported, honestly computed."""

from __future__ import annotations

import numpy as np
import pytest
from test_bench_budget import tiny

from benchmarks import budget, finals, init


def test_simulated_rounds_take_the_model_and_the_labels():
    params = np.random.default_rng(0).permutation(30)
    rows = [{"score": float(i % 7), "params": int(params[i]), "flops": 10 * i} for i in range(30)]
    truth = np.linspace(0.5, 0.9, 30)  # neither score nor the parameter count knows it; FLOPs do
    by_score, by_size = (sorted(range(30), key=lambda i: (-key[i], i))[:6] for key in ([r["score"] for r in rows], params))
    assert truth[by_score].max() < 0.9 and truth[by_size].max() < 0.9
    assert finals.simulate_rounds(rows, truth, truth, 6, 1) < 0.9  # one round: no label reaches the model
    assert finals.simulate_rounds(rows, truth, truth, 6, 2) == 0.9  # the labels of round 1 lead it to the best


@pytest.mark.slow  # 70 s: budget, finals and init, each training hypernetworks and networks
def test_small_runs_report_every_strategy_with_its_interval(tmp_path):
    budget.run(budget.Config(judged=tiny(tmp_path, trainings=2, limit=24), resamples=10))  # trains them
    (result,) = finals.run(finals.Config(judged=tiny(tmp_path, trainings=2, limit=24), resamples=10))
    for (where, k), cell in result["results"].items():
        assert cell["best"] + 1e-9 >= max(max(v) for s, v in cell.items() if s != "best")
        assert len(cell["score"]) == len(cell["rounds2"]) == 2 and len(cell["size"]) == 1
    ref = result["reference"]
    assert ref in ("score", "size") and set(result["intervals"]) == set(finals.STRATEGIES) - {ref}
    for s, iv in result["intervals"].items():
        assert iv.low <= iv.high
        assert iv.estimate == np.mean(result["gaps"][s]) - np.mean(result["gaps"][ref])
    text = finals.markdown([result])
    assert "rounds4" in text and f"minus {ref}" in text
    assert all(iv.verdict(higher_is_better=False) in text for iv in result["intervals"].values())
    (res,) = init.run(init.Config(judged=tiny(tmp_path, trainings=1, limit=2)))
    assert [r["epochs"] for r in res["rows"]] == [1, 2, 6] and all(0 <= r["hypernet"] <= 1 for r in res["rows"])
    assert all(r["lead"].estimate == r["hypernet"] - r["random"] for r in res["rows"])
    assert "predicted start's lead" in init.markdown([res])
