"""`hypernas bench finals` and `hypernas bench init`, small: every strategy reported, honestly computed."""

from __future__ import annotations

import numpy as np
from conftest import fit_config

from hypernas.bench import budget, finals, init, truths
from hypernas.bench.truths import Truth

TINY = fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, eval_archs=2, warmup=1)


def test_simulated_rounds_take_the_model_and_the_labels():
    params = np.random.default_rng(0).permutation(30)
    rows = [{"score": float(i % 7), "params": int(params[i]), "flops": 10 * i} for i in range(30)]
    truth = np.linspace(0.5, 0.9, 30)  # neither score nor the parameter count knows it; FLOPs do
    by_score, by_size = (sorted(range(30), key=lambda i: (-key[i], i))[:6] for key in ([r["score"] for r in rows], params))
    assert truth[by_score].max() < 0.9 and truth[by_size].max() < 0.9
    assert finals.simulate_rounds(rows, truth, truth, 6, 1) < 0.9  # one round: no label reaches the model
    assert finals.simulate_rounds(rows, truth, truth, 6, 2) == 0.9  # the labels of round 1 lead it to the best


def test_small_runs_report_every_strategy(tmp_path, monkeypatch):
    monkeypatch.setattr(truths, "TRUTHS", {"tiny": Truth(("nb201_digits.csv",), "nb201", "digits", TINY)})
    budget.main(["--truths", "tiny", "--runs", "2", "--limit", "24", "--hypernets", str(tmp_path)])  # trains them
    (result,) = finals.main(["--truths", "tiny", "--runs", "2", "--limit", "24", "--hypernets", str(tmp_path),
                             "--out-md", str(tmp_path / "f.md")])
    for (where, k), cell in result["results"].items():
        assert cell["best"] + 1e-9 >= max(max(v) for s, v in cell.items() if s != "best")
        assert len(cell["score"]) == len(cell["rounds2"]) == 2 and len(cell["size"]) == 1
    assert "rounds4" in (tmp_path / "f.md").read_text()
    (res,) = init.main(["--truths", "tiny", "--archs", "2", "--hypernets", str(tmp_path)])
    assert [r["epochs"] for r in res["rows"]] == [1, 2, 6] and all(0 <= r["hypernet"] <= 1 for r in res["rows"])
