"""`hypernas search`: batching, duplicates, resume, final training, the study's contents, export, plots."""

from __future__ import annotations

import os

import optuna
import pytest
import torch
from conftest import fit_config

import hypernas
from hypernas.cli import main
from hypernas.config import SearchConfig, load_search_config
from hypernas.data import load_dataset
from hypernas.errors import HypernasError
from hypernas.export import export_trial
from hypernas.ghn.fit import fit_hypernet
from hypernas.score import Scorer
from hypernas.search import run_search
from hypernas.spaces import get_space
from hypernas.study import load_study
from hypernas.study.record import trial_graph

OPTIONS = {"channels": 4, "cells": 1}
TINY_FIT = fit_config(steps=4, meta_batch=2, batch_size=16, hidden=16, rounds=2, rank=4, warmup=2, eval_archs=2)


@pytest.fixture(scope="module")
def hypernet(tmp_path_factory, mnist1d):
    path = str(tmp_path_factory.mktemp("ghn") / "hypernet.pt")
    fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, TINY_FIT, out=path, progress=False)
    return path


def config(tmp_path, hypernet, **kw) -> SearchConfig:
    base = dict(space="nb201", space_options=OPTIONS, study="t", runs=str(tmp_path), trials=40, trial_batch=16,
                hypernet=hypernet, top_k=2, final_epochs=1, samples=2)
    return SearchConfig(**{**base, **kw})


def completed(study):
    """Every trial the search finished: scored ones COMPLETE, their duplicates PRUNED (`hypernas.study.sync`)."""
    return study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED])


@pytest.fixture(scope="module")
def finished(tmp_path_factory, hypernet):
    tmp = tmp_path_factory.mktemp("search")
    cfg = config(tmp, hypernet)
    return cfg, run_search(cfg, progress=False)


def test_search_completes_the_requested_trials_with_their_records(finished):
    cfg, result = finished
    study = load_study(cfg.storage_url, "t")
    trials = completed(study)
    assert len(trials) == 40 and [t.number for t in trials] == list(range(40))
    assert study.metric_names == ["score"]
    for key in ("space", "space_options", "dataset", "hypernet", "hypernet_sha256", "ndim", "num_classes"):
        assert key in study.user_attrs
    fresh = [t for t in trials if "duplicate_of" not in t.user_attrs]
    for t in fresh:
        assert {"arch", "hash", "params", "flops", "score", "score_std", "loss", "loss_std"} <= set(t.user_attrs)
        assert t.values[0] == t.user_attrs["score"]
    assert result.timing["total"] > 0 and set(result.timing) >= {"score", "storage_wait", "bookkeeping"}


def test_duplicates_get_the_cached_score_and_point_to_the_first(finished):
    cfg, _ = finished
    trials = completed(load_study(cfg.storage_url, "t"))
    by_number = {t.number: t for t in trials}
    duplicates = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert duplicates, "40 TPE trials over NB201 should repeat an equivalent cell"
    for t in duplicates:
        first = by_number[t.user_attrs["duplicate_of"]]
        assert first.number < t.number and first.user_attrs["hash"] == t.user_attrs["hash"]
        assert t.values == first.values and t.system_attrs["hypernas:told"] == first.values
        assert (t.state, first.state) == (optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE)
    fresh_hashes = [t.user_attrs["hash"] for t in trials if "duplicate_of" not in t.user_attrs]
    assert len(fresh_hashes) == len(set(fresh_hashes))


def test_final_training_writes_back_and_leaves_artifacts_and_a_note(finished):
    cfg, result = finished
    study = load_study(cfg.storage_url, "t")
    trained = [t for t in completed(study) if "trained_accuracy" in t.user_attrs]
    assert len(trained) == 2 == len(result.final)
    best_two = sorted((t for t in completed(study) if "duplicate_of" not in t.user_attrs),
                      key=lambda t: (-t.values[0], t.number))[:2]
    assert {t.number for t in trained} == {t.number for t in best_two}
    for t in trained:
        metas = optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)
        assert len(metas) == 1 and metas[0].mimetype == "image/png"
        assert 0 <= t.user_attrs["trained_accuracy"] <= 1
    from optuna_dashboard._note import get_note_from_system_attrs

    note = get_note_from_system_attrs(study._storage.get_study_system_attrs(study._study_id), None)["body"]
    assert "true accuracy" in note and "Kendall tau" in note


def test_resume_keeps_every_trial_and_redoes_nothing(tmp_path, hypernet, monkeypatch):
    import hypernas.search as search_module

    cfg = config(tmp_path, hypernet, trials=48)
    real_score = search_module.Scorer.score
    calls = {"n": 0}

    def interrupted(self, graphs, keys=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_score(self, graphs, keys)

    monkeypatch.setattr(search_module.Scorer, "score", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, progress=False)
    first = completed(load_study(cfg.storage_url, "t"))
    assert len(first) == 32  # two batches written, the third lost with the interruption
    monkeypatch.setattr(search_module.Scorer, "score", real_score)
    scored = []
    monkeypatch.setattr(search_module.Scorer, "score",
                        lambda self, gs, keys=None: scored.extend(gs) or real_score(self, gs, keys))
    run_search(cfg, progress=False)
    after = completed(load_study(cfg.storage_url, "t"))
    assert len(after) == 48 and [t.number for t in after] == list(range(48))
    def record(t):  # final training adds trained_* and final_* attributes; everything else is unchanged
        return t.number, t.values, {k: v for k, v in t.user_attrs.items() if not k.startswith(("trained_", "final_"))}

    assert [record(t) for t in after[:32]] == [record(t) for t in first]
    assert len(scored) <= 16  # only the missing batch was scored
    trained_once = {t.number: t.user_attrs["trained_accuracy"] for t in after if "trained_accuracy" in t.user_attrs}
    run_search(cfg, progress=False)  # nothing left to do: no trial, no training repeated
    again = completed(load_study(cfg.storage_url, "t"))
    assert len(again) == 48
    assert {t.number: t.user_attrs["trained_accuracy"] for t in again if "trained_accuracy" in t.user_attrs} == trained_once


def test_multi_objective_search_keeps_a_pareto_front_and_plots_it(tmp_path, hypernet):
    cfg = config(tmp_path, hypernet, objectives=("score", "params"), sampler="nsga2", study="mo")
    result = run_search(cfg, progress=False)
    study = load_study(cfg.storage_url, "mo")
    assert study.metric_names == ["score", "params"] and len(study.best_trials) >= 1
    from optuna_dashboard._pareto_front import get_pareto_front_trials

    shown = get_pareto_front_trials(study.trials, study.directions)  # the dashboard's "Best Trials"
    assert len({t.user_attrs["hash"] for t in shown}) == len(shown)  # each network once
    front = {t.number for t in study.best_trials}
    assert all(r["trial"] in front for r in result.final)
    out = tmp_path / "pareto.png"
    assert main(["plot", "pareto", "--storage", cfg.storage_url, "--study", "mo", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


SMALL_SPACE = '''
import networkx as nx


def small(trial, *, in_channels, num_classes):
    """Four networks: a conv of two widths and two kernels."""
    G = nx.DiGraph()
    G.add_node("input", op="input", channels=in_channels)
    G.add_node("c", op="conv", channels=trial.suggest_categorical("width", [2, 8]),
               kernel=trial.suggest_categorical("kernel", [1, 3]))
    G.add_node("p", op="global_pool")
    G.add_node("l", op="linear", channels=num_classes)
    G.add_node("out", op="output")
    nx.add_path(G, ["input", "c", "p", "l", "out"])
    return G
'''


def test_the_dashboards_best_trials_show_each_network_once(tmp_path, monkeypatch):
    from dataclasses import replace

    from optuna_dashboard._pareto_front import get_pareto_front_trials

    real = Scorer.score
    monkeypatch.setattr(Scorer, "score", lambda self, graphs, keys=None, progress=False: [  # all four on the front
        replace(s, score=s.params / 1000) for s in real(self, graphs, keys, progress)])
    (tmp_path / "small.py").write_text(SMALL_SPACE)
    cfg = SearchConfig(space=f"{tmp_path}/small.py:small", objectives=("score", "params"), study="few", trials=12,
                       trial_batch=6, runs=str(tmp_path), fit=TINY_FIT, top_k=0, samples=1)
    run_search(cfg, progress=False)
    study = load_study(cfg.storage_url, "few")
    shown = get_pareto_front_trials(study.trials, study.directions)  # what the dashboard lists as "Best Trials"
    assert shown and len({t.user_attrs["hash"] for t in shown}) == len(shown)  # each network once,
    assert any(t.user_attrs.get("duplicate_of") in {f.number for f in shown} for t in study.trials)  # though repeated
    assert len(completed(study)) == 12  # and every trial kept: copies are PRUNED, with the score they copy


@pytest.mark.parametrize("kind", ["history", "ranking", "arch"])
def test_each_plot_writes_a_png(finished, tmp_path, kind):
    cfg, _ = finished
    out = tmp_path / f"{kind}.png"
    assert main(["plot", kind, "--storage", cfg.storage_url, "--study", "t", "--out", str(out)]) == 0
    assert out.stat().st_size > 5000 and out.read_bytes()[:4] == b"\x89PNG"


def test_export_and_load_round_trip(finished, tmp_path, mnist1d):
    cfg, result = finished
    x = mnist1d.x_val[:16]
    trained_trial = result.final[0]["trial"]
    meta = export_trial(cfg.storage_url, "t", trained_trial, str(tmp_path / "a"))
    assert meta["weights"] == "trained" and meta["trial"] == trained_trial
    model = hypernas.load(str(tmp_path / "a"))
    study = load_study(cfg.storage_url, "t")
    t = next(t for t in completed(study) if t.number == trained_trial)

    reference = hypernas.compile_graph(trial_graph(study, t), 1)
    weights = os.path.join(cfg.run_dir, t.user_attrs["trained_weights"])  # stored relative to the run directory
    assert not os.path.isabs(t.user_attrs["trained_weights"])
    reference.load_state_dict(torch.load(weights, weights_only=True))
    assert torch.allclose(model(x), reference.eval()(x), atol=1e-6)
    if meta["pt2"]:
        program = torch.export.load(str(tmp_path / "a" / "model.pt2"))
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)
    untrained = next(t.number for t in completed(study) if "trained_accuracy" not in t.user_attrs
                     and "duplicate_of" not in t.user_attrs)
    meta = export_trial(cfg.storage_url, "t", untrained, str(tmp_path / "b"))
    assert meta["weights"] == "predicted" and meta["batch_stats"] is False
    predicted = hypernas.load(str(tmp_path / "b"))
    assert predicted(x).shape == (16, 10)
    # running statistics from the scoring batch: one sample answers alike alone and in a batch
    assert torch.allclose(predicted(x[:1]), predicted(x[:2])[:1], atol=1e-5)
    assert meta["input_mean"] == pytest.approx(list(mnist1d.input_mean)) and meta["classes"] is None


def test_bad_search_input_is_a_clear_error(tmp_path, hypernet, capsys):
    with pytest.raises(HypernasError, match="objectives"):
        config(tmp_path, hypernet, objectives=("params",))
    with pytest.raises(HypernasError, match="sampler must be one of tpe, .*; got 'cmaes'"):
        config(tmp_path, hypernet, sampler="cmaes")
    with pytest.raises(HypernasError, match="sampler 'tpe' takes no option 'multivariat'"):
        run_search(config(tmp_path, hypernet, sampler_options={"multivariat": True}), progress=False)
    with pytest.raises(HypernasError, match="grid sampler"):
        config(tmp_path, hypernet, sampler="grid", objectives=("score", "params"))
    with pytest.raises(HypernasError, match="score_split must be one of val, train; got 'test'"):
        config(tmp_path, hypernet, score_split="test")
    bad = tmp_path / "bad.toml"
    bad.write_text('space = "nb201"\ntrails = 10\n')
    with pytest.raises(HypernasError, match="unknown option 'trails'; did you mean 'trials'"):
        load_search_config(str(bad), {})
    assert main(["search", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "cannot read study config" in capsys.readouterr().err
    assert main(["export", "--runs", str(tmp_path), "--study", "nope", "--out", str(tmp_path / "x")]) == 1
    assert "no study database at" in capsys.readouterr().err
    # other space options are refused, not silently mixed: by the study's record, and for a new
    # study by the hypernetwork's own record
    run_search(config(tmp_path, hypernet, trials=16, top_k=0, study="mix"), progress=False)
    other = {"channels": 2, "cells": 1}
    with pytest.raises(HypernasError, match="study 'mix' was scored with space_options = .*'channels': 4"):
        run_search(config(tmp_path, hypernet, trials=16, top_k=0, study="mix", space_options=other), progress=False)
    with pytest.raises(HypernasError, match="was trained on space 'nb201' with options"):
        run_search(config(tmp_path, hypernet, trials=16, top_k=0, study="fresh", space_options=other), progress=False)
    # scores on other samples would not compare with the study's: refused too
    with pytest.raises(HypernasError, match="scored with score_split = 'val', this run asks for 'train'"):
        run_search(config(tmp_path, hypernet, trials=16, top_k=0, study="mix", score_split="train"), progress=False)
    study = run_search(config(tmp_path, hypernet, trials=4, top_k=0, study="tr", score_split="train"),
                       progress=False).study
    t = completed(study)[0]
    assert study.user_attrs["score_split"] == "train"
    # the same up to float summation, which depends on the batch the trial was scored in
    (train_score,), (val_score,) = (Scorer.from_checkpoint(hypernet, load_dataset("mnist1d"), samples=2, split=split)
                                    .score([trial_graph(study, t)]) for split in ("train", "val"))
    assert t.values[0] == pytest.approx(train_score.score, rel=1e-5) != val_score.score


def test_shipped_study_configs_parse():
    for name in ("nb201_mnist1d", "macro_mnist1d"):
        cfg = load_search_config(f"studies/{name}.toml", {})
        assert cfg.trials >= 500 and cfg.fit.steps > 0


def test_distinct_counts_architectures_and_warm_start_goes_first(tmp_path, hypernet):
    cfg = config(tmp_path, hypernet, trials=20, trial_batch=8, top_k=0, distinct=True, warm_start=3, warm_pool=6,
                 sampler="evolution")
    run_search(cfg, progress=False)
    trials = completed(load_study(cfg.storage_url, "t"))
    assert sum("duplicate_of" not in t.user_attrs for t in trials) == 20
    from hypernas.initial_design import synflow_design
    from hypernas.spaces import get_space

    design = synflow_design(get_space("nb201"), OPTIONS, 1, 10, (40,), 3, 6, cfg.seed, progress=False)
    assert [t.params for t in sorted(trials, key=lambda t: t.number)[:3]] == design


def test_two_sqlite_workers_share_one_study_exactly(tmp_path, hypernet):
    """Workers on one machine share a SQLite study: the total is exact, numbers unique."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "hypernas.cli", "search", "--space", "nb201", "--channels", "4", "--cells", "1",
           "--runs", str(tmp_path), "--study", "shared", "--trials", "50", "--trial-batch", "8", "--samples", "1",
           "--hypernet", hypernet, "--top-k", "1", "--final-epochs", "1", "--threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    study = load_study(f"sqlite:///{tmp_path}/shared/study.db", "shared")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert len(completed(study)) == 50
    assert sum("trained_accuracy" in t.user_attrs for t in trials) == 1


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_live_workers_hold_distinct_slots_and_a_rerun_takes_the_first_free(tmp_path, kind):
    """Workers seed their samplers apart by their slot; one that ends (or dies) frees it, so a
    rerun of a single worker takes slot 0 again, and with it the seed of the first run."""
    from hypernas.study.storage import open_storage, worker_slot

    storage = open_storage(f"sqlite:///{tmp_path}/s.db") if kind == "sqlite" else optuna.storages.InMemoryStorage()
    with worker_slot(storage, "s") as first:
        with worker_slot(storage, "s") as second, worker_slot(storage, "other") as elsewhere:
            assert (first, second, elsewhere) == (0, 1, 0)
        with worker_slot(storage, "s") as again:
            assert again == 1
    with worker_slot(storage, "s") as rerun:
        assert rerun == 0


@pytest.mark.parametrize("sampler, options", [("gp", {"n_startup_trials": 4}),
                                              ("local", {"n_startup_trials": 4, "startup": "tpe"})])
def test_model_samplers_are_seeded_through_the_search(tmp_path, hypernet, sampler, options):
    """Optuna's Gaussian-process sampler and our local search, past their start-up trials: the
    same seed asks for the same architectures, another seed for others."""
    def arches(study, seed):
        cfg = config(tmp_path, hypernet, trials=13, trial_batch=1, top_k=0, samples=1, sampler=sampler,
                     sampler_options=options, study=study, seed=seed)
        run_search(cfg, progress=False)
        return [t.params for t in sorted(completed(load_study(cfg.storage_url, study)), key=lambda t: t.number)]

    first = arches("a", 0)
    assert len(first) == 13 and first == arches("b", 0)
    assert first != arches("c", 1)


def test_a_worker_that_loses_the_race_to_create_the_tables_retries(monkeypatch):
    """Two workers opening a new SQLite study together: the loser sees "already exists" and
    tries again; an error of another kind (a refused connection) is not retried."""
    import sqlalchemy

    from hypernas.study import storage as study_module

    def failing(message, times):
        calls = []

        def rdb(url, heartbeat_interval=None, **options):
            calls.append(url)
            if len(calls) <= times:
                raise sqlalchemy.exc.OperationalError("CREATE TABLE study_directions", {}, Exception(message))
            return "storage"

        monkeypatch.setattr(study_module.optuna.storages, "RDBStorage", rdb)
        monkeypatch.setattr(study_module.time, "sleep", lambda s: None)
        return calls

    calls = failing("table study_directions already exists", times=2)
    assert study_module._rdb_storage("sqlite:///x.db") == "storage" and len(calls) == 3
    calls = failing("connection refused", times=1)
    with pytest.raises(sqlalchemy.exc.OperationalError):
        study_module._rdb_storage("postgresql://h/db")
    assert len(calls) == 1


def test_export_after_a_move_finds_the_hypernetwork_by_runs_or_hypernet(finished, tmp_path, capsys):
    import json
    import shutil

    cfg, _ = finished
    moved = tmp_path / "moved"
    shutil.copytree(cfg.runs, moved)
    shutil.copy(cfg.hypernet, moved / "t" / "hypernet.pt")  # the run directory, with its hypernetwork, moved
    study = load_study(cfg.storage_url, "t")
    untrained = next(t.number for t in completed(study) if "trained_accuracy" not in t.user_attrs
                     and "duplicate_of" not in t.user_attrs)
    elsewhere = tmp_path / "gone.pt"
    shutil.move(cfg.hypernet, elsewhere)  # the recorded path no longer leads to it
    try:
        assert main(["export", "--runs", str(moved), "--study", "t", "--trial", str(untrained), "--out",
                     str(tmp_path / "a")]) == 0
        assert json.loads((tmp_path / "a" / "meta.json").read_text())["weights"] == "predicted"
        assert main(["export", "--storage", cfg.storage_url, "--study", "t", "--trial", str(untrained),
                     "--hypernet", str(elsewhere), "--out", str(tmp_path / "b")]) == 0
        capsys.readouterr()
        assert main(["export", "--storage", cfg.storage_url, "--study", "t", "--trial", str(untrained),
                     "--out", str(tmp_path / "c")]) == 1
        assert "--hypernet" in capsys.readouterr().err  # says how to point at it
    finally:
        shutil.move(elsewhere, cfg.hypernet)


def test_an_exported_model_looks_like_a_torch_model_and_exports_to_onnx(finished, tmp_path, mnist1d):
    cfg, result = finished
    meta = export_trial(cfg.storage_url, "t", result.final[0]["trial"], str(tmp_path / "a"))
    model = hypernas.load(str(tmp_path / "a"))
    shown = repr(model)
    assert "_NodeParams" not in shown and "conv(" in shown and "global_pool" in shown  # its layers, by op
    x = mnist1d.x_val[:4]
    traced = torch.jit.trace(model, x, check_trace=False)  # the supported paths: tracing and torch.export
    assert torch.allclose(traced(x), model(x), atol=1e-5)
    assert "torch.jit.trace" in hypernas.load.__doc__ and "torch.export" in hypernas.load.__doc__
    onnx = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    assert meta["onnx"] == "model.onnx"
    session = onnx.InferenceSession(str(tmp_path / "a" / "model.onnx"))
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert abs(out - model(x).detach().numpy()).max() < 1e-4


def test_create_model_follows_the_data(mnist1d):
    from conftest import GOOD_CELL

    from hypernas.data import load_dataset

    digits = load_dataset("digits")
    model = hypernas.create_model("nb201", GOOD_CELL, data=digits, channels=2, cells=1)
    assert model.ndim == 2 and model(digits.x_val[:2]).shape == (2, 10)
    assert hypernas.create_model("nb201", GOOD_CELL, data=mnist1d, channels=2, cells=1).ndim == 1
    with pytest.raises(HypernasError, match="ndim"):
        hypernas.create_model("nb201", GOOD_CELL, 1, 10, channels=2, cells=1)  # no data, no ndim: no guess


def test_a_run_of_duplicates_stops_the_search_and_says_how_many_trials_it_holds(tmp_path):
    """The space looks exhausted after `stale_trials` trials in a row found nothing new; the
    warning counts trials (architectures with --distinct), whichever the search counts."""
    from benchmarks.sampler_overhead import StandInScorer
    from hypernas.config import sqlite_url
    from hypernas.loop import search_loop
    from hypernas.study.storage import open_storage

    cfg = SearchConfig(space="nb201", space_options={"channels": 2, "cells": 1}, trials=50, trial_batch=4, top_k=0)
    study = optuna.create_study(storage=open_storage(sqlite_url(str(tmp_path))), study_name="s", direction="maximize")
    cell = {f"edge_{i}_{j}": "nor_conv_3x3" for j in range(1, 4) for i in range(j)}
    with pytest.warns(UserWarning, match=r"stopping at 4 trials: the last 3 trials found nothing new"):
        search_loop(cfg, study, get_space("nb201"), cfg.space_options, 1, 10, StandInScorer(), progress=False,
                    initial=[cell] * 8, stale_trials=3)
    assert len(study.get_trials()) == 4  # the first batch: one network and its 3 copies
