"""Finals that say how sure they are: several seeds per finalist, racing, ties with the best and the pick."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from conftest import fit_config

import hypernas.finals as finals_module
from hypernas.cli import main
from hypernas.config import SearchConfig
from hypernas.errors import OptionError
from hypernas.final_table import final_table
from hypernas.search import run_search
from hypernas.study import load_study
from hypernas.train import TrainResult

FIT = fit_config(steps=3, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)


def config(tmp_path, **kw) -> SearchConfig:
    base = dict(space="nb201", space_options={"channels": 2, "cells": 1}, study="c", runs=str(tmp_path), trials=16,
                trial_batch=8, fit=FIT, top_k=3, final_epochs=1, samples=2)
    return SearchConfig(**{**base, **kw})


class FakeTraining:
    """Final trainings with planted accuracies: the first two finalists (by score) are 0.01
    apart, well within one run's noise of 0.01; the third is far behind. Counts the trainings."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.order: dict[str, int] = {}

    def __call__(self, G, data, config, seed, device, progress, init):
        from hypernas.compile import compile_graph

        arch = G.graph.get("arch", str(sorted(G.nodes)))
        rank = self.order.setdefault(arch, len(self.order))
        self.calls.append((arch, seed))
        noise = [0.012, -0.011, 0.004, -0.006, 0.009, -0.003, 0.0, 0.007, -0.008, 0.002][seed % 10]
        accuracy = {0: 0.90, 1: 0.89}.get(rank, 0.60) + noise
        return TrainResult(accuracy, 0.3, 0, 0.5, compile_graph(G, 1))


@pytest.fixture()
def fake_training(monkeypatch):
    fake = FakeTraining()
    monkeypatch.setattr(finals_module, "train", fake)
    return fake


def quiet_search(cfg):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = run_search(cfg, progress=False)
    return result, out.getvalue()


def trained(cfg) -> dict[int, dict]:
    return {t.number: t.user_attrs for t in load_study(cfg.storage_url, cfg.study).trials
            if "trained_accuracy" in t.user_attrs}


def test_final_seeds_train_each_finalist_n_times_and_its_interval_is_over_them(tmp_path, fake_training):
    cfg = config(tmp_path, final_seeds=3)
    result, out = quiet_search(cfg)
    assert len(fake_training.calls) == 9 and sorted({s for _, s in fake_training.calls}) == [0, 1, 2]
    for attrs in trained(cfg).values():
        runs = attrs["trained_runs"]
        assert len(runs) == 3 and attrs["trained_accuracy"] == pytest.approx(sum(runs) / 3)
        assert attrs["trained_interval"] == "seeds" and attrs["trained_low"] < attrs["trained_accuracy"] < attrs["trained_high"]
    assert "95% intervals over training seeds (3 to 3 runs each" in out
    assert any(line.startswith("trial") and "true accuracy [95%]" in line for line in out.splitlines())
    quiet_search(cfg)  # a rerun trains nothing again
    assert len(fake_training.calls) == 9


def test_one_seed_shows_the_test_samples_interval_and_says_it_covers_only_that(tmp_path, fake_training):
    cfg = config(tmp_path)
    _, out = quiet_search(cfg)
    assert all(a["trained_interval"] == "test sample" for a in trained(cfg).values())
    assert "cover the test sample only (Wilson), not the training seed" in out


def test_racing_spends_its_budget_only_on_the_finalists_tied_with_the_leader(tmp_path, fake_training):
    cfg = config(tmp_path, final_seeds=2, final_race=6)
    result, out = quiet_search(cfg)
    runs = {a["arch"]: len(a["trained_runs"]) for a in trained(cfg).values()}
    behind = next(arch for arch, rank in fake_training.order.items() if rank == 2)
    assert runs[behind] == 2  # far behind from the start: never raced
    assert sum(runs.values()) == 3 * 2 + 6  # the two within noise took the whole budget, still unseparated
    quiet_search(cfg)  # a resumed race has nothing left to spend
    assert len(fake_training.calls) == 12
    tied = [r for r in result.final if r["tied"]]
    assert len(tied) == 2 and all(r["interval"] == "seeds" for r in result.final)
    assert "2 finalists are tied with the best" in out


@pytest.mark.parametrize("rule", ["smallest", "score"])
def test_the_pick_among_the_tied_follows_the_rule_and_export_best_takes_it(rule, tmp_path, fake_training, capsys):
    cfg = config(tmp_path, final_seeds=2, final_pick=rule)
    result, _ = quiet_search(cfg)
    tied = [r for r in result.final if r["tied"]]
    assert len(tied) >= 2
    expected = min(tied, key=lambda r: r["params"] if rule == "smallest" else -r["score"])["trial"]
    picked = [r["trial"] for r in result.final if r["picked"]]
    assert picked == [expected] and load_study(cfg.storage_url, cfg.study).user_attrs["final_picked"] == expected
    assert main(["export", "--runs", cfg.runs, "--study", cfg.study, "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "meta.json").read_text())["trial"] == expected
    said = capsys.readouterr().out
    assert f"best: trial {expected}, picked among the {len(tied)} finalists tied with the best (--final-pick {rule})" in said


def test_racing_without_several_seeds_is_refused(tmp_path):
    with pytest.raises(OptionError, match="final_race compares intervals over training seeds"):
        config(tmp_path, final_race=4)


def test_the_table_marks_the_best_and_the_tied():
    row = dict(trial=1, round=1, reason="score #1", score=0.5, score_std=0.01, trained_accuracy=0.9, low=0.88,
               high=0.92, runs=2, interval="seeds", params=10, seconds=1.0, arch="a", rule="smallest")
    rows = [{**row, "best": True, "tied": True}, {**row, "trial": 2, "tied": True, "picked": True},
            {**row, "trial": 3, "tied": False, "trained_accuracy": 0.5, "low": 0.48, "high": 0.52}]
    lines = final_table(rows, None).splitlines()
    assert lines[1].split()[11] == "best" and lines[2].split()[11] == "tied" and lines[3].split()[11] == "10"
    assert "0.9000 [0.8800, 0.9200]" in lines[1]
    assert "picked trial 2, the fewest parameters among them (--final-pick smallest)" in "\n".join(lines)
