"""Nothing lost, nothing mixed: what a resume refuses, and where final weights live."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

import optuna
import pytest
from conftest import fails_cleanly, fit_config

from hypernas.config import SearchConfig
from hypernas.errors import HypernasError
from hypernas.export import export_trial
from hypernas.search import run_search
from hypernas.study import load_study

OPTIONS = {"channels": 2, "cells": 1}
FIT = fit_config(steps=3, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2,
                 checkpoint_every=3)


def config(tmp_path, **kw) -> SearchConfig:
    base = dict(space="nb201", space_options=OPTIONS, study="r", runs=str(tmp_path / "runs"), trials=8, trial_batch=4,
                fit=FIT, top_k=1, final_epochs=1, samples=1)
    return SearchConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A finished small study that trained its own hypernetwork."""
    tmp = tmp_path_factory.mktemp("resume")
    cfg = config(tmp)
    run_search(cfg, progress=False)
    return tmp, cfg


def copy_of(scored, tmp_path) -> SearchConfig:
    """The scored study's run directory copied, so that each test may spoil its own."""
    tmp, cfg = scored
    shutil.copytree(cfg.runs, tmp_path / "runs")
    return replace(cfg, runs=str(tmp_path / "runs"))


def trials_of(cfg):
    return load_study(cfg.storage_url, cfg.study).get_trials(deepcopy=False)


@pytest.mark.parametrize("change, named", [
    ({"samples": 2}, "samples = 1, this run asks for 2"),
    ({"seed": 1}, "seed = 0, this run asks for 1"),
    ({"score_split": "train"}, "score_split = 'val'"),
    ({"final_epochs": 2}, "final_epochs = 1"),
    ({"val_fraction": 0.2}, "val_fraction = 0.1"),
    ({"dataset": "mnist1d_small"}, "sha256 = "),
])
def test_a_resume_refuses_a_change_to_what_the_scores_depend_on(scored, tmp_path, change, named):
    cfg = copy_of(scored, tmp_path)
    before = trials_of(cfg)
    with pytest.raises(HypernasError, match=named):
        run_search(replace(cfg, trials=12, **change), progress=False)
    assert len(trials_of(cfg)) == len(before)  # nothing added


def test_a_resume_refuses_another_hypernetwork_and_a_retraining(scored, tmp_path):
    cfg = copy_of(scored, tmp_path)
    path = cfg.hypernet_path
    with open(path, "rb") as f:
        original = f.read()
    # more steps would retrain the checkpoint in place, under trials scored with the old one
    with pytest.raises(HypernasError, match="--fit-steps 6 would retrain it under those trials"):
        run_search(replace(cfg, trials=12, fit=replace(FIT, steps=6)), progress=False)
    with pytest.raises(HypernasError, match="was made with fit.hidden = 8, this run asks for 16"):
        run_search(replace(cfg, trials=12, fit=replace(FIT, hyper=replace(FIT.hyper, hidden=16))), progress=False)
    with open(path, "rb") as f:
        assert f.read() == original  # never retrained
    # another checkpoint, given outright
    other = str(tmp_path / "other.pt")
    run_search(config(tmp_path, study="other", fit=replace(FIT, seed=5)), progress=False)
    shutil.copy(os.path.join(tmp_path, "runs", "other", "hypernet.pt"), other)
    with pytest.raises(HypernasError, match="was scored with another hypernetwork"):
        run_search(replace(cfg, trials=12, hypernet=other), progress=False)
    # the same file with one bit flipped is another file
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 1
    with open(path, "wb") as f:
        f.write(bytes(flipped))
    with pytest.raises(HypernasError):
        run_search(replace(cfg, trials=12), progress=False)
    assert load_study(cfg.storage_url, cfg.study).user_attrs["hypernet_sha256"] != ""
    assert len([t for t in trials_of(cfg) if t.state.is_finished()]) == 8


def test_the_sampler_may_change_on_a_resume(scored, tmp_path):
    cfg = copy_of(scored, tmp_path)
    run_search(replace(cfg, trials=12, sampler="random"), progress=False)
    done = [t for t in trials_of(cfg) if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
    assert len(done) == 12 and load_study(cfg.storage_url, cfg.study).user_attrs["sampler"] == "random"


def test_two_studies_of_one_name_keep_their_own_final_weights(tmp_path):
    """One --runs folder, one study name, two storages: neither study's trained weights are lost."""
    runs = tmp_path / "runs"
    first = config(tmp_path, storage=f"sqlite:///{tmp_path}/a.db")
    second = config(tmp_path, storage=f"sqlite:///{tmp_path}/b.db", seed=3)
    run_search(first, progress=False)
    run_search(second, progress=False)
    weights = sorted(p.name for p in (runs / "r" / "final").glob("*.pt"))
    assert len(weights) == 2, weights
    exported = []
    for cfg, name in ((first, "a"), (second, "b")):
        (trained,) = [t for t in trials_of(cfg) if "trained_accuracy" in t.user_attrs]
        meta = export_trial(cfg.storage_url, "r", trained.number, str(tmp_path / f"export_{name}"))
        assert meta["weights"] == "trained"
        exported.append(meta["weights_sha256"])
    assert exported[0] != exported[1]  # each study's own training, not one overwritten by the other


def test_export_after_a_move_finds_the_weights_or_fails_loudly(scored, tmp_path, capsys):
    cfg = copy_of(scored, tmp_path)
    trained = next(t for t in trials_of(cfg) if "trained_accuracy" in t.user_attrs)
    moved = tmp_path / "elsewhere"
    shutil.move(cfg.runs, moved)
    from hypernas.cli import main

    assert main(["export", "--runs", str(moved), "--study", "r", "--trial", str(trained.number), "--out",
                 str(tmp_path / "out")]) == 0
    assert "trained weights" in capsys.readouterr().out
    for weights in (moved / "r" / "final").glob("*.pt"):
        weights.unlink()
    fails_cleanly(["export", "--runs", moved, "--study", "r", "--trial", trained.number, "--out", tmp_path / "out2"],
                  capsys, f"trial {trained.number} was trained, but its weights", "are not in")
