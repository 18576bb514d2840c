"""`python -m benchmarks.budget`: exact random picks, tie-breaking, and a small end-to-end run."""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
from conftest import fit_config

from benchmarks import budget, finals
from benchmarks.core import truths
from benchmarks.core.picks import random_picks, top_picks
from benchmarks.core.truths import Judged, Truth
from hypernas.errors import CheckpointError, OptionError

TINY = fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, eval_archs=2, warmup=1)
SIX_SEEDS = ("nb201_mnist1d_dev.csv", "nb201_mnist1d_dev_seeds2-5.csv")


def tiny(tmp_path, tables=SIX_SEEDS, dataset="mnist1d", **options) -> Judged:
    return Judged(truths=("tiny",), hypernets=str(tmp_path), custom=(("tiny", Truth(tables, "nb201", dataset, TINY)),),
                  **options)


def test_random_picks_are_the_exact_expectation():
    truth = np.array([0.3, 0.9, 0.5, 0.7, 0.1])
    one, best3 = random_picks(truth, 3)
    assert one == truth.mean()
    assert best3 == statistics.fmean(max(c) for c in itertools.combinations(truth, 3))


def test_ties_are_broken_at_random_not_by_order():
    scores = np.array([1.0, 1.0, 0.0, 0.0])  # two tied best, of which the first is bad
    truth = np.array([0.1, 0.9, 0.5, 0.5])
    top1, best_of_1 = top_picks(scores, truth, 1, np.random.default_rng(0))
    assert abs(top1 - 0.5) < 0.08 and top1 == best_of_1  # the mean of the two, not the first
    assert top_picks(np.array([3.0, 2.0, 1.0]), np.array([0.2, 0.9, 0.5]), 2, None) == (0.2, 0.9)


def test_a_small_run_reports_every_scorer_budget_and_interval(tmp_path):
    (result,) = budget.run(budget.Config(judged=tiny(tmp_path, trainings=2, limit=24), resamples=30))
    assert len(result["budgets"]) == 6
    for b in result["budgets"]:
        assert b["archs"] >= 6 and b["best"] >= b["random"][1] >= b["random"][0]
        for s in ("hypernet", "params", "flops", "naswot", "synflow", "one_epoch", "one_run"):
            v = b["scorers"][s]
            assert len(v["top3"]) == (2 if s == "hypernet" else 1)
            assert all(b["best"] + 1e-9 >= t3 >= t1 - 1e-9 for t1, t3 in zip(v["top1"], v["top3"]))
    iv = result["intervals"]
    for s in ("params", "flops", "naswot", "synflow", "one_epoch", "one_run", "random"):
        lead = iv[f"lead_gap3.{s}"]
        assert lead.low <= lead.high and lead.verdict() in ("ahead", "within noise", "behind")
        # the lead is the other's gap minus the hypernetwork's, both as the per-run rows give them
        rows = result["per_run"]
        other = rows[s]["gap3"][0] if s != "random" else result["random"]["gap3"]
        assert lead.estimate == pytest.approx(other - statistics.fmean(rows["hypernet"]["gap3"]), abs=1e-9)
    assert sorted(p.name for p in tmp_path.glob("tiny_s*.pt")) == ["tiny_s0.pt", "tiny_s1.pt"]
    text = budget.markdown([result])
    assert "| hypernet |" in text and "| one_run |" in text and "95% interval" in text and "noise ceiling tau" in text
    assert "Within-budget tau against one training run:" in text

    # An arm's option reaches the training, and a folder made with other options is refused
    # rather than passed off as the arm (the seed stays each run's own).
    with pytest.raises(CheckpointError, match="fit.hidden = 8, this run asks for 4"):
        budget.run(budget.Config(judged=tiny(tmp_path, trainings=1, limit=16), fit={"hidden": 4}))
    truth = dict(tiny(tmp_path).custom)["tiny"]
    assert truths.with_fit(truth, {"hidden": 4}).fit.hyper.hidden == 4 and truths.with_fit(truth, {}) is truth
    # A development truth reads the hypernetworks of the truth it shares data with.
    dev = Truth(truth.tables, "nb201", "mnist1d", truth.fit, hypernets="tiny", development=True)
    assert truths.hypernet_paths("dev", dev, 2, str(tmp_path)) == [str(tmp_path / "tiny_s0.pt"), str(tmp_path / "tiny_s1.pt")]
    with pytest.raises(CheckpointError, match="tiny_s2.pt is missing"):
        finals.run(finals.Config(judged=tiny(tmp_path, trainings=3)))


def test_a_table_of_two_seeds_keeps_both_in_its_truth_and_has_no_one_run_scorer(tmp_path):
    loaded = truths.load_table("tiny", Truth(("nb201_digits.csv",), "nb201", "digits", TINY), limit=10)
    assert not loaded.held_out and sorted(loaded.truth_table.by_seed) == [0, 1]
    six = truths.load_table("tiny", Truth(SIX_SEEDS, "nb201", "mnist1d", TINY), limit=10)
    assert six.held_out and sorted(six.truth_table.by_seed) == [1, 2, 3, 4, 5]
    assert list(six.label) == six.table.by_seed[0] and np.allclose(six.acc, np.mean([six.table.by_seed[s] for s in
                                                                                     range(1, 6)], axis=0))


def test_development_tables_are_not_run_unless_asked():
    assert "macro_mnist1d_small_dev" in truths.TRUTHS and "macro_mnist1d_small_dev" not in truths.REFERENCE
    assert truths.TRUTHS["macro_mnist1d_small_dev"].hypernets == "macro_mnist1d_small"


def test_an_unknown_truth_is_refused_in_one_line(capsys):
    with pytest.raises(OptionError, match="truths must be among"):
        Judged(truths=("nb201_mnist1d", "nope"))
    for bench in (budget, finals):
        with pytest.raises(SystemExit):
            bench.main(["--truths", "nb201_mnist1d,nope"])
        err = capsys.readouterr().err
        assert "truths must be among" in err and "nope" in err and "Traceback" not in err
