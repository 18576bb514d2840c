"""What a study or an export holds is read as untrusted: a planted study attribute, an edited
export or a recorded space file is refused by its name, and nothing is written or read where
it must not be."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import replace

import pytest
import torch
from conftest import fails_cleanly, fit_config

from hypernas.cli import main
from hypernas.config import SearchConfig
from hypernas.errors import HypernasError
from hypernas.export import export_trial, load
from hypernas.optuna_private import annotate_trial
from hypernas.search import run_search
from hypernas.study import load_study

FIT = fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished small study with two trained finalists."""
    tmp = tmp_path_factory.mktemp("planted")
    cfg = SearchConfig(space="nb201", space_options={"channels": 2, "cells": 1}, study="p", runs=str(tmp / "runs"),
                       trials=6, trial_batch=6, fit=FIT, top_k=2, final_epochs=1, samples=1)
    run_search(cfg, progress=False)
    return cfg


@pytest.fixture
def copy(study, tmp_path):
    """The study's run directory copied, to be spoilt; its config and its two finalists."""
    cfg = replace(study, runs=str(tmp_path / "runs"), hypernet=None)
    shutil.copytree(study.runs, cfg.runs)
    s = load_study(cfg.storage_url, "p")
    finalists = sorted((t for t in s.get_trials() if "trained_accuracy" in t.user_attrs), key=lambda t: t.number)
    return cfg, s, finalists


def export_argv(cfg, tmp_path, trial) -> list:
    return ["export", "--runs", cfg.runs, "--study", "p", "--trial", trial, "--out", tmp_path / "out"]


# ---- study attributes --------------------------------------------------------------------------------------


def test_a_planted_run_token_never_writes_outside_the_run_directory(copy, tmp_path, capsys):
    cfg, s, _ = copy
    s.set_user_attr("run_token", "../../../x")
    argv = ["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", cfg.runs, "--study", "p",
            "--trials", 10, "--trial-batch", 4, "--samples", 1, "--top-k", 4, "--final-epochs", 1,
            "--fit-steps", 2, "--fit-meta-batch", 2, "--fit-batch-size", 16, "--fit-hidden", 8, "--fit-rounds", 1,
            "--fit-rank", 2, "--fit-warmup", 1, "--fit-eval-archs", 2]
    fails_cleanly(argv, capsys, "run_token", "'../../../x'")
    assert not [p for p in tmp_path.parent.rglob("x-trial_*")]
    assert len(s.get_trials()) == 6  # nothing added


@pytest.mark.parametrize("value", ["other finalist", "outside", "/etc/passwd", 5])
def test_planted_trained_weights_are_refused(value, copy, tmp_path, capsys):
    """Not another finalist's weights, nor a file outside the run directory (`../../x.pt`)."""
    cfg, s, (first, second) = copy
    planted = {"other finalist": second.user_attrs["trained_weights"], "outside": "outside"}.get(value, value)
    if value == "outside":
        shutil.copy(f"{cfg.run_dir}/{second.user_attrs['trained_weights']}", tmp_path / "outside.pt")
        planted = os.path.relpath(tmp_path / "outside.pt", cfg.run_dir)
    annotate_trial(s, first, user_attrs={"trained_weights": planted})
    fails_cleanly(export_argv(cfg, tmp_path, first.number), capsys, "trained_weights", repr(planted))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key, value", [("trained_accuracy", "high"), ("trained_accuracy", 7.0),
                                        ("params", "many"), ("hash", ["a"]), ("arch", 3), ("duplicate_of", "x")])
def test_planted_trial_attributes_are_refused_by_name(key, value, copy, tmp_path, capsys):
    cfg, s, (first, _) = copy
    annotate_trial(s, first, user_attrs={key: value})
    fails_cleanly(["plot", "ranking", "--runs", cfg.runs, "--study", "p", "--out", tmp_path / "r.png"], capsys,
                  f"trial {first.number}", key)
    with pytest.raises(HypernasError, match=f"trial {first.number}: attribute {key!r}"):
        run_search(replace(cfg, trials=6), progress=False)  # the final table reads them back
    assert not (tmp_path / "r.png").exists()


@pytest.mark.parametrize("key, value", [
    ("input_size", [1e9]), ("input_size", [40, 40]), ("ndim", 3), ("in_channels", "x"), ("num_classes", -1),
    ("classes", "abc"), ("input_mean", "x"), ("input_std", [0.0]), ("space_options", "x"), ("run_dir", 5),
    ("hypernet", 5), ("seed", "x"), ("samples", 10**9), ("space", None), ("run_token", "a/b"),
])
def test_planted_study_attributes_are_refused_by_name(key, value, copy, tmp_path, capsys):
    cfg, s, _ = copy
    s.set_user_attr(key, value)
    for argv in (export_argv(cfg, tmp_path, "best"), ["plot", "history", "--runs", cfg.runs, "--study", "p", "--out",
                                                      tmp_path / "h.png"]):
        fails_cleanly(argv, capsys, key)
    with pytest.raises(HypernasError, match=key):
        run_search(replace(cfg, trials=8), progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "h.png").exists()


def test_a_planted_hypernetwork_path_is_not_read_unless_it_is_the_one_scored_with(copy, tmp_path, capsys):
    cfg, s, finalists = copy
    untrained = next(t.number for t in s.get_trials() if t.number not in {f.number for f in finalists})
    other = tmp_path / "other.pt"
    other.write_bytes(b"not the hypernetwork")
    s.set_user_attr("hypernet", str(other))
    # The run directory's own hypernetwork is preferred (a moved run), so the planted file is not read...
    assert main([str(a) for a in export_argv(cfg, tmp_path, untrained)]) == 0
    # ...and without it, the planted file is refused by its digest before it is parsed.
    os.remove(os.path.join(cfg.runs, "p", "hypernet.pt"))
    fails_cleanly(export_argv(cfg, tmp_path / "again", untrained), capsys, "is not the one the study was scored with")


def test_an_input_too_large_for_memory_is_refused_before_it_is_made(copy, tmp_path, capsys):
    cfg, s, _ = copy
    s.set_user_attr("input_size", [10**9])
    fails_cleanly(export_argv(cfg, tmp_path, "best"), capsys, "needs about", "GiB")


def test_a_limit_added_on_resume_is_refused(copy):
    """A study made without a limit records that it had none, so that a resume with one is
    refused: its earlier trials were never checked against it."""
    cfg, s, _ = copy
    assert s.user_attrs["max_params"] is None and "classes" in s.user_attrs
    with pytest.raises(HypernasError, match="was scored with max_params = None, this run asks for 20000"):
        run_search(replace(cfg, trials=8, max_params=20000), progress=False)
    assert len(load_study(cfg.storage_url, "p").get_trials()) == 6


def test_a_recorded_space_file_is_refused_without_inviting_its_use(copy, tmp_path, capsys):
    cfg, s, _ = copy
    path = f"{tmp_path}/evil.py:space"
    s.set_user_attr("space", path)
    err = fails_cleanly(export_argv(cfg, tmp_path, "best"), capsys, "which is code", path, "refused")
    assert f"--space {path}" not in err


# ---- exports ------------------------------------------------------------------------------------------------


@pytest.fixture
def exported(study, tmp_path):
    out = tmp_path / "e"
    export_trial(study.storage_url, "p", "best", str(out))
    return out


def meta_of(folder) -> dict:
    return json.loads((folder / "meta.json").read_text())


def rewrite(folder, meta: dict, digest: bool = True) -> None:
    """meta.json rewritten; with `digest`, its own digest made to match, as someone who knows the format would."""
    meta = {k: v for k, v in meta.items() if k != "meta_sha256"}
    if digest:
        meta["meta_sha256"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    (folder / "meta.json").write_text(json.dumps(meta))


def test_every_file_of_an_export_is_digested(exported):
    meta = meta_of(exported)
    assert {"arch_sha256", "weights_sha256", "meta_sha256"} <= set(meta)
    assert load(str(exported))
    (exported / "meta.json").write_text(json.dumps({**meta, "batch_stats": not meta["batch_stats"]}))
    with pytest.raises(HypernasError, match="meta.json is not the file that was exported"):
        load(str(exported))


@pytest.mark.parametrize("key", ["arch_sha256", "weights_sha256", "meta_sha256"])
@pytest.mark.parametrize("how", ["deleted", "null"])
def test_a_missing_digest_is_an_error_not_a_warning(key, how, exported):
    meta = meta_of(exported)
    if how == "deleted":
        del meta[key]
    else:
        meta[key] = None
    if key == "arch_sha256":  # an edited graph, which the missing digest would let through
        (exported / "arch.json").write_text((exported / "arch.json").read_text().replace('"channels":2', '"channels":3'))
    rewrite(exported, meta, digest=key != "meta_sha256")
    with pytest.raises(HypernasError, match=f"{key} missing"):
        load(str(exported))


@pytest.mark.parametrize("key, value", [("classes", "abc"), ("input_mean", "x"), ("num_classes", -1),
                                        ("input_std", [0.0]), ("input_size", [1e9]), ("weights", "guessed")])
def test_a_malformed_meta_json_is_refused_even_with_its_digest(key, value, exported):
    rewrite(exported, {**meta_of(exported), key: value})
    with pytest.raises(HypernasError, match=f"meta.json is malformed.*{key}"):
        load(str(exported))


@pytest.mark.parametrize("state", [{"x": 1}, [1, 2], {"linear.weight": "w"}, 3])
def test_odd_state_dicts_are_one_clear_error(state, exported):
    torch.save(state, exported / "weights.pt")
    meta = meta_of(exported)
    meta["weights_sha256"] = hashlib.sha256((exported / "weights.pt").read_bytes()).hexdigest()[:16]
    rewrite(exported, meta)
    with pytest.raises(HypernasError, match="weights.pt"):
        load(str(exported))


def test_the_docstring_says_what_the_digests_are_for():
    assert "not signatures" in load.__doc__ and "damage" in load.__doc__
