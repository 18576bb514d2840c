"""`hypernas bench budget`: exact random picks, tie-breaking, and a small end-to-end run."""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
from conftest import fit_config

from hypernas.bench import budget, finals, truths
from hypernas.errors import CheckpointError


def test_random_picks_are_the_exact_expectation():
    truth = np.array([0.3, 0.9, 0.5, 0.7, 0.1])
    one, best3 = budget.random_picks(truth, 3)
    assert one == truth.mean()
    assert best3 == statistics.fmean(max(c) for c in itertools.combinations(truth, 3))


def test_ties_are_broken_at_random_not_by_order():
    scores = np.array([1.0, 1.0, 0.0, 0.0])  # two tied best, of which the first is bad
    truth = np.array([0.1, 0.9, 0.5, 0.5])
    top1, best_of_1 = budget.top_picks(scores, truth, 1, np.random.default_rng(0))
    assert abs(top1 - 0.5) < 0.08 and top1 == best_of_1  # the mean of the two, not the first
    assert budget.top_picks(np.array([3.0, 2.0, 1.0]), np.array([0.2, 0.9, 0.5]), 2, None) == (0.2, 0.9)


def test_a_small_run_reports_every_scorer_and_budget(tmp_path, monkeypatch):
    truth = truths.Truth(("nb201_digits.csv",), "nb201", "digits", fit_config(steps=2, meta_batch=2, batch_size=16,
                                                                                   hidden=8, rounds=1, rank=2,
                                                                                   eval_archs=2, warmup=1))
    monkeypatch.setattr(truths, "TRUTHS", {"tiny": truth})
    out = tmp_path / "b.md"
    (result,) = budget.main(["--truths", "tiny", "--runs", "2", "--limit", "16", "--hypernets", str(tmp_path),
                             "--out-md", str(out)])
    assert len(result["budgets"]) == 6 and result["archs"] == 16
    for b in result["budgets"]:
        assert b["archs"] >= 4 and b["best"] >= b["random"][1] >= b["random"][0]
        for s in ("hypernet", "params", "flops", "naswot", "synflow", "one_epoch"):
            v = b["scorers"][s]
            assert len(v["top3"]) == (2 if s == "hypernet" else 1)
            assert all(b["best"] + 1e-9 >= t3 >= t1 - 1e-9 for t1, t3 in zip(v["top1"], v["top3"]))
    assert len(result["global_tau"]["hypernet"]) == 2 and all(-1 <= t <= 1 for t in result["global_tau"]["flops"])
    text = out.read_text()
    assert "| hypernet |" in text and "seed_to_seed" in text and "best-of-3 gap" in text
    assert sorted(p.name for p in tmp_path.glob("tiny_s*.pt")) == ["tiny_s0.pt", "tiny_s1.pt"]

    # An arm's option reaches the training, and a folder made with other options is refused
    # rather than passed off as the arm (the seed stays each run's own).
    with pytest.raises(CheckpointError, match="fit.hidden = 8, this run asks for 4"):
        budget.main(["--truths", "tiny", "--runs", "1", "--limit", "16", "--hypernets", str(tmp_path), "--hidden", "4"])
    assert truths.with_fit(truth, {"hidden": 4}).fit.hyper.hidden == 4 and truths.with_fit(truth, {}) is truth
    # A development truth reads the hypernetworks of the truth it shares data with.
    dev = truths.Truth(truth.tables, "nb201", "digits", truth.fit, hypernets="tiny", development=True)
    assert truths.hypernet_paths("dev", dev, 2, str(tmp_path)) == [str(tmp_path / "tiny_s0.pt"), str(tmp_path / "tiny_s1.pt")]
    with pytest.raises(CheckpointError, match="tiny_s2.pt is missing"):
        finals.main(["--truths", "tiny", "--runs", "3", "--hypernets", str(tmp_path)])


def test_development_tables_are_not_run_unless_asked():
    assert "macro_mnist1d_small_dev" in truths.TRUTHS and "macro_mnist1d_small_dev" not in truths.REFERENCE
    assert truths.TRUTHS["macro_mnist1d_small_dev"].hypernets == "macro_mnist1d_small"


def test_an_unknown_truth_is_refused_in_one_line(capsys):
    for bench in (budget, finals):
        with pytest.raises(SystemExit):
            bench.main(["--truths", "nb201_mnist1d,nope"])
        assert "--truths takes a comma list of" in capsys.readouterr().err
