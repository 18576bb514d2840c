"""What a new user meets: their own .npz read right or refused clearly, data known by content,
readable drawings, the final table, and the small conveniences around a search."""

from __future__ import annotations

import json
import os
import re
import shutil

import numpy as np
import optuna
import pytest
from conftest import AS_GIVEN, GOOD_CELL, fails_cleanly, fit_config, small_nb201

from hypernas.cli import main
from hypernas.config import SearchConfig
from hypernas.data import load_dataset
from hypernas.errors import GraphError
from hypernas.final_table import final_table
from hypernas.ghn.fit import fit_hypernet
from hypernas.score import Scorer
from hypernas.search import run_search
from hypernas.spaces import get_space
from hypernas.study import load_study

FIT = fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)
OPTIONS = {"channels": 2, "cells": 1}
FINISHED = [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]  # scored, and stored copies


def npz(path, x, y, **more) -> str:
    np.savez(path, x=x, y=y, **more)
    return str(path)


def images(n=120, rng=np.random.default_rng(0)):
    return rng.normal(size=(n, 16, 16, 3)).astype(np.float32)


# ---- the user's own data ------------------------------------------------------------------------------------


def test_channels_last_images_are_read_as_three_channels_and_it_is_said(tmp_path, capsys):
    path = npz(tmp_path / "img.npz", images(), np.arange(120) % 3)
    assert main(["sample", "--space", "tiny_cnn", "--dataset", path, "-n", "1", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["nodes"][0]["channels"] == 3  # the input node: 3 channels, not 16
    assert "read 120 samples as 3-channel 16×16 images (layout nhwc;" in err  # said, on stderr beside the output
    as_given = npz(tmp_path / "given.npz", images(), np.arange(120) % 3, layout="channels_first")
    assert load_dataset(as_given).in_channels == 16  # the user said so: read as given, no guess
    assert load_dataset(path, layout="nchw").in_channels == 16  # and so by --layout


@pytest.mark.parametrize("labels, classes, mapped", [
    (np.arange(120) % 3 + 1, 3, (1, 2, 3)),  # 1-based
    ((np.arange(120) % 4).astype(float), 4, None),  # floats that hold integers
    (np.array(["cat", "dog", "eel"] * 40), 3, ("cat", "dog", "eel")),
])
def test_labels_become_classes_0_to_k_minus_1_and_any_map_is_recorded(labels, classes, mapped, tmp_path, capsys):
    path = npz(tmp_path / "d.npz", np.random.default_rng(1).normal(size=(120, 1, 12)), labels)
    assert main(["sample", "--space", "tiny_cnn", "--dataset", path, "-n", "1", "--format", "json"]) == 0
    graph = json.loads(capsys.readouterr().out)
    assert next(n for n in graph["nodes"] if n["op"] == "linear")["channels"] == classes
    data = load_dataset(path)
    assert data.num_classes == classes and data.classes == mapped and data.signature()["classes"] == (
        None if mapped is None else list(mapped))


def test_arrays_named_X_and_Y_are_found_and_others_are_named(tmp_path, capsys):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "upper.npz", X=rng.normal(size=(40, 1, 8)), Y=np.arange(40) % 2)
    assert load_dataset(str(tmp_path / "upper.npz")).num_classes == 2
    np.savez(tmp_path / "other.npz", inputs=rng.normal(size=(40, 1, 8)), targets=np.arange(40) % 2)
    fails_cleanly(["sample", "--space", "tiny_cnn", "--dataset", tmp_path / "other.npz"], capsys,
                  "needs arrays x and y (or X and Y", "it has ['inputs', 'targets']")


def test_data_is_known_by_content_not_by_path(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(3)
    path = npz(tmp_path / "d.npz", rng.normal(size=(80, 1, 12)), np.arange(80) % 3)
    monkeypatch.chdir(tmp_path)
    assert main(["train-hypernet", "--space", "tiny_cnn", "--dataset", "d.npz", "--steps", "1", "--meta-batch", "1",
                 "--batch-size", "8", "--eval-archs", "1", "--out", "h.pt"]) == 0
    capsys.readouterr()
    archs = tmp_path / "archs.txt"
    main(["sample", "--space", "tiny_cnn", "--dataset", "d.npz", "-n", "2"])
    archs.write_text(capsys.readouterr().out)
    shutil.copy(path, tmp_path / "copy.npz")
    for given in (path, str(tmp_path / "copy.npz")):  # the same file by an absolute path, and a copy
        assert main(["score", "--hypernet", "h.pt", "--archs", str(archs), "--dataset", given]) == 0, given
    capsys.readouterr()
    npz(tmp_path / "changed.npz", rng.normal(size=(80, 1, 12)), np.arange(80) % 3)
    fails_cleanly(["score", "--hypernet", "h.pt", "--archs", archs, "--dataset", tmp_path / "changed.npz"], capsys,
                  "was trained for other data", "sha256")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the recorded relative path no longer leads to the data
    fails_cleanly(["score", "--hypernet", "../h.pt", "--archs", archs], capsys, "pass it with --dataset")


# ---- the Python scorer --------------------------------------------------------------------------------------------


def test_the_python_scorer_refuses_graphs_of_another_skeleton(tmp_path, mnist1d):
    from hypernas.ghn.checkpoint import load_hypernet

    path = str(tmp_path / "h.pt")
    fit_hypernet(get_space("nb201"), {"channels": 8, "cells": 1}, mnist1d, FIT, out=path, progress=False)
    ok = get_space("nb201").from_text(GOOD_CELL, 1, 10, channels=8, cells=1)
    for scorer in (Scorer.from_checkpoint(path, mnist1d), Scorer(load_hypernet(path).model, mnist1d)):
        assert 0 < scorer.score([ok])[0].score <= 1
        with pytest.raises(GraphError, match="is not in space 'nb201' with options .*'channels': 8"):
            scorer.score([get_space("nb201").from_text(GOOD_CELL, 1, 10)])  # the default C=16 N=5


# ---- drawings and the final table -------------------------------------------------------------------------------


def test_nb201_is_drawn_as_its_cell_and_macro_as_its_blocks(tmp_path, capsys):
    cell = get_space("nb201").sketch(small_nb201())
    assert cell.kind == "cell" and cell.nodes == ["0", "1", "2", "3"] and len(cell.edges) == 6
    assert {label for _, _, label in cell.edges} == {"conv 3x3", "skip"} and "4/8/16 channels" in cell.caption
    G = get_space("macro").sample(3, 1, 10)
    blocks = get_space("macro").sketch(G)
    assert blocks.kind == "chain" and len(blocks.nodes) == 2 + sum(1 for n in G if str(n).endswith("_dw_conv"))
    assert re.fullmatch(r"s\d+b\d+( /2)?\nk[357] e[136]\n\d+ ch( \+skip)?", blocks.nodes[1])
    for view in ("auto", "ops"):
        out = tmp_path / f"{view}.png"
        assert main(["draw", "--space", "nb201", "--arch", GOOD_CELL, "--channels", "2", "--cells", "1", "--view", view,
                     "--out", str(out)]) == 0
        assert out.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "auto.png").stat().st_size != (tmp_path / "ops.png").stat().st_size
    fails_cleanly(["draw", "--space", "tiny_cnn", "--arch", "{}", "--view", "sketch", "--out", tmp_path / "x.png"],
                  capsys)


def test_the_final_table_keeps_nb201_strings_in_their_column():
    rows = [{"trial": 3, "arch": GOOD_CELL, "score": 0.5, "score_std": 0.01, "trained_accuracy": 0.9, "params": 10,
             "seconds": 1.0, "round": 1, "reason": "score #1", "low": 0.88, "high": 0.92, "runs": 1,
             "interval": "test sample", "best": True, "tied": True, "picked": True, "rule": "smallest"}]
    line = final_table(rows, None, markdown=True).splitlines()[2]  # the dashboard's note
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    assert len(cells) == 10 and cells[-1].strip().replace("\\|", "|") == f"`{GOOD_CELL}`"  # whole, not cut
    plain = final_table(rows, None).splitlines()  # the terminal's: copied as it is into `hypernas train --arch`
    assert plain[0].split()[:3] == ["trial", "round", "picked"] and plain[1].endswith(f"  {GOOD_CELL}")


# ---- around a search ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, study="u", runs=str(tmp), trials=24, trial_batch=8,
                       fit=FIT, top_k=3, final_epochs=1, samples=1)
    return cfg, run_search(cfg, progress=False)


def test_the_study_records_how_well_its_finalists_were_ranked(searched):
    cfg, result = searched
    attrs = load_study(cfg.storage_url, "u").user_attrs
    assert attrs["finalists"] == len(result.final) == 3 and attrs["finalists_kendall_tau"] == pytest.approx(result.tau)


def test_duplicates_can_be_told_apart_by_an_attribute(searched):
    cfg, _ = searched
    done = load_study(cfg.storage_url, "u").get_trials(states=FINISHED)
    assert all(t.user_attrs["duplicate"] == ("duplicate_of" in t.user_attrs) for t in done)
    assert any(t.user_attrs["duplicate"] for t in done) and not all(t.user_attrs["duplicate"] for t in done)


def test_a_timeout_stops_scoring_and_still_trains_the_finalists(searched, tmp_path):
    cfg, _ = searched
    from dataclasses import replace

    quick = replace(cfg, study="t", runs=str(tmp_path), trials=10_000, trial_batch=4, timeout=0.01, top_k=1,
                    hypernet=cfg.hypernet_path)
    result = run_search(quick, progress=False)
    done = load_study(quick.storage_url, "t").get_trials(states=FINISHED)
    assert 0 < len(done) < 100 and len(result.final) == 1


def test_score_shows_progress_on_long_input(searched, tmp_path, capsys):
    cfg, _ = searched
    archs = tmp_path / "a.txt"
    main(["sample", "--space", "nb201", "--channels", "2", "--cells", "1", "-n", "70"])
    archs.write_text(capsys.readouterr().out)
    assert main(["score", "--hypernet", cfg.hypernet_path, "--archs", str(archs), "--samples", "1"]) == 0
    err = capsys.readouterr().err
    assert "score:" in err and ("draw/s" in err or "s/draw" in err)


def test_warnings_read_as_one_line_each(tmp_path):
    import subprocess
    import sys

    path = npz(tmp_path / "d.npz", images(40), np.arange(40) % 2 + 1)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    proc = subprocess.run([sys.executable, "-m", "hypernas.cli", "sample", "--space", "tiny_cnn", "--dataset", path,
                           "-n", "1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and all(line.startswith("hypernas: ") for line in lines), proc.stderr
    assert "warning: " in lines[0] and "labels 1, 2 are not 0..1" in lines[0]
    assert "read 40 samples as 3-channel 16×16 images" in lines[1] and "labels 1, 2 as classes 0..1" in lines[1]


def test_an_exported_predicted_model_answers_alike_at_any_batch_size(searched, tmp_path):
    """From the command line: a trial that was not trained exports predicted weights with
    running statistics, so one sample's logits do not depend on what it is batched with."""
    import torch

    import hypernas

    cfg, _ = searched
    study = load_study(cfg.storage_url, "u")
    untrained = next(t for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
                     if "trained_accuracy" not in t.user_attrs and not t.user_attrs["duplicate"])
    out = tmp_path / "e"
    assert main(["export", "--runs", cfg.runs, "--study", "u", "--trial", str(untrained.number), "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["weights"] == "predicted" and meta["batch_stats"] is False and len(meta["input_std"]) == 1
    model = hypernas.load(str(out))
    x = load_dataset("mnist1d").x_test[:8]
    alone, batched = model(x[:1]), model(x)[:1]
    assert torch.allclose(alone, batched, atol=1e-5), (alone - batched).abs().max()


# ---- the five layouts, end to end ---------------------------------------------------------------------------------

TINY_SEARCH = ["--space", "tiny_cnn", "--trials", 2, "--trial-batch", 2, "--top-k", 0, "--samples", 1,
               "--fit-steps", 1, "--fit-meta-batch", 1, "--fit-batch-size", 8, "--fit-eval-archs", 1,
               "--fit-hidden", 8, "--fit-rounds", 1, "--fit-rank", 2]
READ_AS = {"ncl": "2 channels of length 8", "nlc": "2 channels of length 8", "nchw": "2-channel 8×8 images",
           "nhwc": "2-channel 8×8 images", "nhw": "1-channel 8×8 images"}


@pytest.mark.parametrize("layout", list(AS_GIVEN))
def test_search_on_each_layout_says_what_it_read_and_builds_that_network(layout, tmp_path, capsys):
    given, meant = AS_GIVEN[layout]
    path = npz(tmp_path / "d.npz", given, np.arange(40) % 2)
    (tmp_path / "s.toml").write_text(f'layout = "{layout}"\n')  # nhw from the study config, the others by flag
    how = ["--config", tmp_path / "s.toml"] if layout == "nhw" else ["--layout", layout]
    assert main([str(a) for a in ["search", "--dataset", path, "--runs", tmp_path, *how, *TINY_SEARCH]]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: read 40 samples as {READ_AS[layout]} (layout {layout}; 29 to train")
    assert out.index(" read 40 samples") < out.index("training the hypernetwork")  # said before any training
    study = load_study(f"sqlite:///{tmp_path}/hypernas/study.db", "hypernas")
    assert (study.user_attrs["in_channels"], study.user_attrs["ndim"]) == (meant.shape[1], meant.ndim - 2)
    graph = json.loads(study.trials[0].user_attrs["arch"])
    assert graph["nodes"][0]["channels"] == meant.shape[1]  # the network's input is what the user meant


def test_search_refuses_a_shape_it_cannot_settle_before_any_training(tmp_path, capsys):
    path = npz(tmp_path / "d.npz", AS_GIVEN["nhw"][0], np.arange(40) % 2)
    fails_cleanly(["search", "--dataset", path, "--runs", tmp_path, *TINY_SEARCH], capsys,
                  "fits ncl (8 channels of length 8), nlc (8 channels of length 8), nhw (1-channel 8×8 images); "
                  "say which with --layout")
    assert not (tmp_path / "hypernas").exists()


def test_a_search_prints_no_optuna_line_about_its_in_memory_mirror(searched, tmp_path):
    import logging

    cfg, _ = searched
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logging.getLogger("optuna").addHandler(handler)
    before = optuna.logging.get_verbosity()
    try:
        from dataclasses import replace

        run_search(replace(cfg, study="quiet", runs=str(tmp_path), trials=4, trial_batch=4, top_k=0,
                           hypernet=cfg.hypernet_path), progress=False)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert not [r for r in records if "in memory" in r.getMessage()] and optuna.logging.get_verbosity() == before
