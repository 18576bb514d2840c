"""`python -m benchmarks.ranking` end to end on a tiny table, every scorer plus a planted perfect one."""

from __future__ import annotations

import math

import pytest
from conftest import fit_config

from benchmarks import ranking
from benchmarks.core.scorers import rank_average
from benchmarks.core.tables import SPACE_OPTIONS, merged_table
from benchmarks.core.truths import TRUTHS
from hypernas.ghn.fit import fit_hypernet
from hypernas.spaces import get_space
from search_spaces import nb201

TINY = fit_config(steps=6, meta_batch=2, batch_size=16, checkpoint_every=3, hidden=16, rounds=2, rank=4, warmup=2,
                 eval_every=3, eval_archs=2)


def test_every_scorer_ranks_a_tiny_table(tmp_path, mnist1d):
    hypernet = str(tmp_path / "hypernet.pt")
    fit_hypernet(get_space("nb201"), SPACE_OPTIONS["nb201"], mnist1d, TINY, out=hypernet, progress=False)
    table = merged_table(TRUTHS["nb201_mnist1d"].tables).head(12)
    truth = dict(zip(table.archs, table.seeds(range(1, 6)).mean))  # the truth: seed 0 is held out
    planted = {"truth": lambda graphs: [truth[nb201.format_graph(G)] for G in graphs]}  # a perfect scorer
    png = tmp_path / "out" / "ranking.png"
    result = ranking.run(ranking.Config(hypernet=hypernet, limit=12, resamples=50, out_png=str(png), custom=planted))
    rows = result["rows"]

    labels = [label for label, _ in ranking.SCORERS.values()]
    assert len(labels) == 13 and [r["scorer"] for r in rows] == [*labels, "truth"]
    for r in rows:
        assert -1 <= r["kendall_tau"] <= 1 and -1 <= r["spearman_rho"] <= 1, r["scorer"]
        assert 0 <= r["precision_at_top"] <= 1 and r["top1_true"] in truth.values()
        assert r["seconds_per_arch"] > 0 and len(r["scores"]) == 12 and all(map(math.isfinite, r["scores"]))
    best = rows[-1]
    # 1 up to round-off: with tied accuracies scipy's tau-b divides by a square root (0.9999999999999998).
    assert best["kendall_tau"] == pytest.approx(1.0, abs=1e-12) and best["spearman_rho"] == pytest.approx(1.0, abs=1e-12)
    assert best["precision_at_top"] == 1.0 and best["top1_true"] == max(truth.values())
    lead = result["leads"]["truth"]  # the perfect scorer against the hypernetwork's score
    assert lead.estimate == pytest.approx(1.0 - rows[0]["kendall_tau"]) and lead.low <= lead.high
    # Sanity of the real scorers: the seconds of one-epoch training dwarf the parameter count's.
    by_label = {r["scorer"]: r for r in rows}
    assert by_label["one-epoch training"]["seconds_per_arch"] > 10 * by_label["parameter count"]["seconds_per_arch"]

    lines = ranking.markdown(result).splitlines()
    assert "noise ceiling tau" in lines[0] and "seed 0 held out" in lines[0]
    body = [line for line in lines if line.startswith("| ") and not line.startswith("| scorer")]
    assert [line.split(" | ")[0].removeprefix("| ") for line in body] == [*labels, "truth"]
    assert body[-1].split(" | ")[2].endswith(lead.verdict())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_without_a_checkpoint_it_trains_one_in_its_folder_and_reuses_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ranking, "FitConfig", lambda: TINY)  # the default FitConfig takes minutes
    config = ranking.Config(hypernets=str(tmp_path), limit=4, scorers=("hypernet_score",), resamples=10)
    first = ranking.run(config)
    assert (tmp_path / "hypernet.pt").exists() and "training the hypernetwork" in capsys.readouterr().out
    assert ranking.run(config)["rows"][0]["scores"] == first["rows"][0]["scores"]  # the finished checkpoint is reused


def test_unknown_scorer_is_refused(capsys):
    with pytest.raises(SystemExit):
        ranking.main(["--scorers", "synflow,telepathy", "--limit", "4"])
    assert "telepathy" in capsys.readouterr().err


def test_a_hypernetwork_is_scored_on_its_own_validation_slice(tmp_path):
    from hypernas.data import load_dataset

    hypernet = str(tmp_path / "hypernet.pt")
    fit_hypernet(get_space("nb201"), SPACE_OPTIONS["nb201"], load_dataset("mnist1d", val_fraction=0.25), TINY,
                 out=hypernet, progress=False)
    result = ranking.run(ranking.Config(hypernet=hypernet, limit=4, scorers=("hypernet_score",), resamples=10))
    assert len(result["rows"][0]["scores"]) == 4 and all(0 < s <= 1 for s in result["rows"][0]["scores"])


def test_rank_average_weighs_its_scorers_equally():
    up, down, skewed = (lambda gs: [1, 2, 3]), (lambda gs: [30, 20, 10]), (lambda gs: [0.1, 5, 1e6])
    assert rank_average(up, down)([None] * 3) == [2.0, 2.0, 2.0]  # opposite ranks cancel
    assert rank_average(up, skewed)([None] * 3) == [1.0, 2.0, 3.0]  # only ranks count, not scale
