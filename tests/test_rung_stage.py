"""Rungs in the search: promotion, the limits, intermediate values, a resume after a kill, two workers."""

from __future__ import annotations

import threading

import optuna
import pytest
from conftest import fails_cleanly, fit_config

import hypernas.rung_stage as rung_stage
from hypernas.config import SearchConfig
from hypernas.errors import OptionError
from hypernas.finals import candidates, finalize
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.search import run_search
from hypernas.spaces import get_space
from hypernas.study import load_study

OPTIONS = {"channels": 2, "cells": 1}
FIT = fit_config(steps=3, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)
RUNGS = dict(rungs=(1, 2), rung_pool=6, rung_keep=0.5, top_k=3)  # 6 train 1 epoch, 3 go on to 2: 9 trainings


def config(tmp_path, **kw) -> SearchConfig:
    base = dict(space="nb201", space_options=OPTIONS, study="r", runs=str(tmp_path), trials=24, trial_batch=8,
                fit=FIT, final_epochs=1, samples=2, **RUNGS)
    return SearchConfig(**{**base, **kw})


def trials_of(cfg) -> list[optuna.trial.FrozenTrial]:
    return load_study(cfg.storage_url, cfg.study).get_trials(states=[optuna.trial.TrialState.COMPLETE])


def rung_records(cfg) -> dict[int, tuple]:
    """trial number -> (its rung results, why it stopped, its intermediate values), for every trial the rungs saw."""
    return {t.number: (t.user_attrs["rung_results"], t.user_attrs["rung_stopped"], t.intermediate_values)
            for t in trials_of(cfg) if "rung_results" in t.user_attrs}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    cfg = config(tmp_path_factory.mktemp("rungs"))
    result = run_search(cfg, progress=False)
    return cfg, result


def test_the_rungs_promote_the_best_half_and_the_finals_take_the_survivors(searched):
    cfg, result = searched
    study = load_study(cfg.storage_url, cfg.study)
    pool = [t.number for t in candidates(study, cfg.rung_pool)]
    records = rung_records(cfg)
    assert sorted(records) == sorted(pool)  # the rungs trained the 6 best scored, and no other
    first = sorted(pool, key=lambda n: (records[n][0]["1"]["loss"], pool.index(n)))  # by validation loss, score breaks ties
    promoted = first[:3]
    assert {n for n, r in records.items() if "2" in r[0]} == set(promoted)  # the best half went on to 2 epochs
    for n in first[3:]:
        assert records[n][1].startswith("cut at rung 1 (1 epochs)") and set(records[n][0]) == {"1"}
    survivors = sorted(promoted, key=lambda n: (records[n][0]["2"]["loss"], first.index(n)))
    assert [row["trial"] for row in result.final] == survivors  # the finals take them, best first
    assert [row["reason"] for row in result.final] == ["rungs #1", "rungs #2", "rungs #3"]
    trained = [t.number for t in trials_of(cfg) if "trained_accuracy" in t.user_attrs]
    assert sorted(trained) == sorted(survivors)
    assert study.user_attrs["rungs"] == {"epochs": [1, 2], "pool": 6, "keep": 0.5, "signal": "loss", "init": "hypernet"}


def test_every_rung_result_is_an_intermediate_value_and_the_table_shows_the_history(searched, capsys):
    cfg, result = searched
    for results, _, curve in rung_records(cfg).values():
        assert curve == {int(e): r["accuracy"] for e, r in results.items()}  # the dashboard's learning curve
        assert all(0 <= r["accuracy"] <= 1 and r["loss"] > 0 for r in results.values())
    for row in result.final:
        results = rung_records(cfg)[row["trial"]][0]
        assert row["rungs"] == f"1 ep {results['1']['accuracy']:.3f}, 2 ep {results['2']['accuracy']:.3f}"
    from hypernas.final_table import final_table

    table = final_table(result.final, result.tau)
    assert "rungs: validation accuracy" in table.splitlines()[0] and result.final[0]["rungs"] in table
    from optuna_dashboard._note import get_note_from_system_attrs

    study = load_study(cfg.storage_url, cfg.study)
    finalist = study.trials[result.final[0]["trial"]]
    note = get_note_from_system_attrs(study._storage.get_study_system_attrs(study._study_id), finalist._trial_id)
    assert f"Rungs, validation accuracy: {result.final[0]['rungs']}." in note["body"]  # the trial's dashboard note


def test_the_rungs_never_train_an_architecture_over_the_limits(tmp_path, searched):
    sizes = sorted(t.user_attrs["params"] for t in trials_of(searched[0]))
    cap = sizes[len(sizes) // 2]
    cfg = config(tmp_path, hypernet=searched[0].hypernet_path, max_params=cap)
    run_search(cfg, progress=False)
    seen = [t for t in trials_of(cfg) if "rung_results" in t.user_attrs]
    assert len(seen) == 6 and all(t.user_attrs["params"] <= cap and t.user_attrs.get("feasible", True) for t in seen)


def test_a_run_killed_in_a_rung_resumes_and_trains_nothing_twice(tmp_path, searched, monkeypatch):
    whole = config(tmp_path, study="whole", hypernet=searched[0].hypernet_path)
    run_search(whole, progress=False)
    real, calls, kill = rung_stage.train, [], {"armed": True}

    def killed_at_the_fifth(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 5 and kill.pop("armed", False):
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cut = config(tmp_path, study="cut", hypernet=searched[0].hypernet_path)
    monkeypatch.setattr(rung_stage, "train", killed_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        run_search(cut, progress=False)
    assert len(rung_records_partial(cut)) == 4  # each finished training was written at once
    calls.clear()  # kill is spent: the rerun trains to the end
    run_search(cut, progress=False)
    assert len(calls) == 9 - 4  # the four it had are not trained again
    assert rung_records(cut) == rung_records(whole)  # the same results, the same promotions


def rung_records_partial(cfg) -> list[int]:
    return [t.number for t in trials_of(cfg) if "rung_results" in t.user_attrs]


def test_two_workers_on_one_study_train_each_rung_once(tmp_path, searched, mnist1d, monkeypatch):
    base = config(tmp_path, study="two", hypernet=searched[0].hypernet_path, top_k=0, rungs=None)
    run_search(base, progress=False)  # the scored study both workers find
    real, calls = rung_stage.train, []
    monkeypatch.setattr(rung_stage, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = config(tmp_path, study="two", hypernet=searched[0].hypernet_path)
    hypernet = load_hypernet(cfg.hypernet_path, data=mnist1d).model
    errors = []

    def work():  # each worker its own study object, as two processes have; the final stage's lock between them
        try:
            finalize(cfg, load_study(cfg.storage_url, cfg.study), mnist1d, get_space("nb201"), hypernet, progress=False)
        except BaseException as err:  # reported below, in the test's own thread
            errors.append(err)

    workers = [threading.Thread(target=work) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors and len(calls) == 9  # one worker trained the rungs under the lock; the other found them
    assert len([t for t in trials_of(cfg) if "trained_accuracy" in t.user_attrs]) == 3


@pytest.mark.parametrize("change, named", [
    ({"rungs": (3, 1)}, "rungs must be increasing epochs from 1"),
    ({"rungs": (1, 3), "rung_pool": 4, "rung_keep": 0.25}, "leave 1 survivors, fewer than top_k 3"),
    ({"rungs": (1,), "objectives": ("score", "params"), "sampler": "nsga2"}, "with several objectives"),
    ({"rungs": (1,), "final_rounds": 2}, "use one of them"),
    ({"rung_keep": 0}, "rung_keep must be a finite number > 0"),
])
def test_bad_rung_options_are_refused_in_one_line(change, named, tmp_path):
    with pytest.raises(OptionError, match=named):
        config(tmp_path, **change)


def test_the_command_line_names_the_rung_flags(tmp_path, capsys):
    fails_cleanly(["search", "--space", "nb201", "--runs", tmp_path, "--rungs", "2,1"], capsys, "increasing epochs")
