"""Search under a budget: parameter, FLOPs and latency limits, infeasible trials, the Pareto spread."""

from __future__ import annotations

import statistics
import warnings
from dataclasses import replace

import optuna
import pytest
from conftest import fails_cleanly, fit_config

from hypernas import budget
from hypernas.config import SearchConfig
from hypernas.errors import HypernasError
from hypernas.finals import spread
from hypernas.graph import param_count, validate
from hypernas.search import run_search
from hypernas.spaces import get_space
from hypernas.study import load_study

OPTIONS = {"channels": 2, "cells": 1}
FIT = fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)
COMPLETE = [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED]  # a search's finished trials


def median_params() -> int:
    space = get_space("nb201")
    return int(statistics.median(param_count(space.sample(s, 1, 10, **OPTIONS), 1) for s in range(200)))


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("budget")
    limit = median_params()
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, study="b", runs=str(tmp), trials=20, trial_batch=5,
                       fit=FIT, top_k=2, final_epochs=1, samples=1, max_params=limit)
    scored: list = []
    from hypernas.score import Scorer

    real = Scorer.score

    def watching(self, graphs, keys=None, progress=False):
        scored.extend(graphs)
        return real(self, graphs, keys, progress)

    Scorer.score = watching
    try:
        result = run_search(cfg, progress=False)
    finally:
        Scorer.score = real
    return cfg, result, scored, limit


def test_a_limit_is_enforced_and_nothing_over_it_is_scored(limited):
    cfg, result, scored, limit = limited
    assert scored and all(param_count(info, 1) <= limit for info in scored)
    done = load_study(cfg.storage_url, "b").get_trials(states=COMPLETE)
    feasible = [t for t in done if t.user_attrs["feasible"]]
    assert len(feasible) == 20  # --trials counts feasible trials
    first = {t.number: t for t in done if "duplicate_of" not in t.user_attrs}
    of = {t.number: first[t.user_attrs.get("duplicate_of", t.number)] for t in done}  # a duplicate's scored trial
    assert all(of[t.number].user_attrs["params"] <= limit for t in feasible)
    infeasible = [t for t in done if not t.user_attrs["feasible"]]
    assert infeasible, "a median limit leaves about half the draws over it"
    for t in infeasible:  # stored PRUNED without values, so that Optuna's charts leave them out
        assert t.state == optuna.trial.TrialState.PRUNED and t.values is None and "score" not in t.user_attrs
        assert t.system_attrs["hypernas:told"][0] == 0.0 and of[t.number].user_attrs["params"] > limit
        assert t.user_attrs["infeasible"].startswith("params ") and t.user_attrs["constraints"][0] > 0
    assert all(r["params"] <= limit for r in result.final)
    assert load_study(cfg.storage_url, "b").user_attrs["infeasible_trials"] == len(infeasible)


def test_infeasible_trials_are_told_to_the_sampler_with_their_constraints(limited):
    cfg, *_ = limited
    done = load_study(cfg.storage_url, "b").get_trials(states=COMPLETE)
    # Optuna's samplers store what constraints_func returned, as TPE then reads it
    assert all(t.system_attrs["constraints"] == t.user_attrs["constraints"] for t in done)


def test_a_resume_with_another_limit_is_refused(limited):
    cfg, *_ = limited
    with pytest.raises(HypernasError, match="was scored with max_params = "):
        run_search(replace(cfg, trials=25, max_params=cfg.max_params + 100), progress=False)


def test_a_limit_no_architecture_meets_is_an_early_clear_error(tmp_path, capsys):
    fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", tmp_path,
                   "--max-params", 100], capsys, "none of 200 sampled architectures has at most 100 parameters; "
                                                 "sampled, the space ranges from 564 to")
    assert not (tmp_path / "hypernas" / "hypernet.pt").exists()
    fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", tmp_path,
                   "--max-latency", 1e-6], capsys, "runs in at most 1e-06 ms on cpu; the fastest took")


@pytest.mark.parametrize("flag, value, named", [("--max-params", 0, "--max-params must be an integer >= 1"),
                                                ("--max-latency", -1, "--max-latency must be a finite number > 0")])
def test_bad_limits_are_clear_errors(flag, value, named, tmp_path, capsys):
    fails_cleanly(["search", "--space", "nb201", "--runs", tmp_path, flag, value], capsys, named)


def test_a_limit_in_toml_is_type_checked(tmp_path, capsys):
    (tmp_path / "s.toml").write_text('space = "nb201"\nmax_params = "10k"\n')
    fails_cleanly(["search", "--config", tmp_path / "s.toml"], capsys, "max_params must be an integer, got '10k'")


def test_latency_is_measured_once_per_network_and_recorded_with_how(monkeypatch, tmp_path):
    monkeypatch.setattr(budget, "LATENCY_MAX_SECONDS", 0.02)  # quick looks: what is tested is the flow
    calls = []
    real = budget.time_latency
    monkeypatch.setattr(budget, "time_latency", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, study="lat", runs=str(tmp_path), trials=16,
                       trial_batch=8, fit=FIT, top_k=1, final_epochs=1, samples=1, objectives=("score", "latency"),
                       sampler="nsga2")
    run_search(cfg, progress=False)
    done = load_study(cfg.storage_url, "lat").get_trials(states=COMPLETE)
    distinct = {t.user_attrs["hash"] for t in done}
    assert len(calls) == len(distinct)  # the cache: each network timed once, duplicates copy it
    for t in done:
        assert t.values[1] == t.user_attrs["latency_ms"] > 0 and t.user_attrs["latency_spread_ms"] >= 0
        assert "blocks of batch-1 forward passes" in t.user_attrs["latency_measured"]
    assert load_study(cfg.storage_url, "lat").metric_names == ["score", "latency"]


def test_the_final_training_spreads_along_the_pareto_front():
    def trial(number, score, cost):
        return optuna.trial.create_trial(values=[score, cost], params={}, distributions={}, user_attrs={"hash": str(number)})

    front = [trial(i, 0.5 + i / 20, 100 + 10 * i) for i in range(9)]  # score rises with cost: all on the front
    for i, t in enumerate(front):
        t.number = i
    chosen = spread(front, 3)
    assert sorted(t.values[1] for t in chosen) == [100, 140, 180]  # both ends and the middle, not the 3 best
    assert [t.values[0] for t in spread(front, 1)] == [max(t.values[0] for t in front)]


def test_measures_of_a_network(tmp_path):
    G = get_space("nb201").sample(0, 1, 10, **OPTIONS)
    info = validate(G)
    m = budget.Measurer(budget.Limits(max_params=10), ("score",), 1, (40,)).measure(info, "k")
    assert not m.feasible and m.latency_ms is None and m.attrs["infeasible"].startswith("params ")


def test_a_latency_limit_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "LATENCY_MAX_SECONDS", 0.02)  # quick looks: what is tested is the flow
    space = get_space("nb201")
    times = sorted(budget.measure_latency(validate(space.sample(s, 1, 10, **OPTIONS)), 1, (40,)) for s in range(9))
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, study="fast", runs=str(tmp_path), trials=8, trial_batch=4,
                       fit=FIT, top_k=1, final_epochs=1, samples=1, max_latency=times[6])
    result = run_search(cfg, progress=False)
    done = load_study(cfg.storage_url, "fast").get_trials(states=COMPLETE)
    feasible = [t for t in done if t.user_attrs["feasible"]]
    assert len(feasible) == 8 and all(t.user_attrs["latency_ms"] <= cfg.max_latency for t in feasible)
    assert result.final and all(t.user_attrs["latency_ms"] <= cfg.max_latency for t in feasible)


# ---- latency: the deployable form, its spread, a second look near the limit ---------------------------------------


def test_latency_times_the_traced_model_with_torch_benchmark_and_keeps_its_spread(monkeypatch):
    import torch

    traced = []
    real = torch.jit.trace
    monkeypatch.setattr(torch.jit, "trace", lambda *a, **k: traced.append(1) or real(*a, **k))
    info = validate(get_space("nb201").sample(0, 1, 10, **OPTIONS))
    latency = budget.time_latency(info, 1, (40,))
    assert traced == [1] and latency.ms > 0 and latency.spread_ms >= 0 and latency.blocks >= 1
    m = budget.Measurer(budget.Limits(max_latency=1e3), ("score",), 1, (40,)).measure(info, "k")
    assert m.attrs["latency_ms"] == round(m.latency_ms, 4) and m.attrs["latency_spread_ms"] >= 0
    assert "traced (torch.jit.trace)" in m.attrs["latency_measured"] and "torch.utils.benchmark" in m.attrs[
        "latency_measured"]


def scripted(monkeypatch, *measurements):
    """time_latency answering with these (ms, spread) in turn, as a machine that turns quiet."""
    answers = iter(measurements)
    calls = []

    def fake(*args, **kwargs):
        calls.append(1)
        ms, spread = next(answers)
        return budget.Latency(ms, spread, blocks=20)

    monkeypatch.setattr(budget, "time_latency", fake)
    return calls


def test_a_network_near_the_limit_is_measured_again_before_it_is_called_infeasible(monkeypatch):
    info = validate(get_space("nb201").sample(0, 1, 10, **OPTIONS))
    calls = scripted(monkeypatch, (3.5, 0.2), (2.4, 0.1))  # over a 3 ms limit by less than the margin, then under
    m = budget.Measurer(budget.Limits(max_latency=3.0), ("score",), 1, (40,)).measure(info, "a")
    assert m.feasible and m.latency_ms == 2.4 and len(calls) == 2 and m.attrs["latency_measurements"] == 2
    calls = scripted(monkeypatch, (30.0, 0.5))  # far over, with a tight spread: one look is enough
    m = budget.Measurer(budget.Limits(max_latency=3.0), ("score",), 1, (40,)).measure(info, "b")
    assert not m.feasible and len(calls) == 1 and m.attrs["infeasible"] == "latency 30 ms > 3 ms"


def test_a_spread_that_says_the_machine_is_busy_is_warned_of_once(monkeypatch):
    from hypernas.errors import HypernasWarning

    info = validate(get_space("nb201").sample(0, 1, 10, **OPTIONS))
    scripted(monkeypatch, (10.0, 6.0), (1.5, 0.1), (1.2, 0.9))  # 10 ms ± 6 against 3: look again
    measurer = budget.Measurer(budget.Limits(max_latency=3.0), ("score",), 1, (40,))
    with pytest.warns(HypernasWarning, match="the machine looks busy"):
        first = measurer.measure(info, "a")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measurer.measure(info, "b")  # busy too: said once
    assert first.feasible and first.latency_ms == 1.5 and caught == []


def test_the_space_range_is_said_up_front_and_an_impossible_limit_is_refused_fast(tmp_path, capsys):
    fails_cleanly(["search", "--space", "nb201", "--channels", 2, "--cells", 1, "--runs", tmp_path,
                   "--max-params", 10], capsys, "none of 200 sampled architectures has at most 10 parameters; "
                                                "sampled, the space ranges from")  # the first draws, not 2,000
    assert main_prints_range(tmp_path, capsys)


def main_prints_range(tmp_path, capsys) -> bool:
    from hypernas.cli import main

    limit = median_params()
    code = main(["search", "--space", "nb201", "--channels", "2", "--cells", "1", "--runs", str(tmp_path), "--study",
                 "r", "--max-params", str(limit), "--trials", "2", "--top-k", "0", "--fit-steps", "0"])
    out, err = capsys.readouterr()
    line = next(line for line in out.splitlines() if line.startswith("space nb201"))
    return code == 0 and "parameters" in line and "FLOPs" in line and "limit check" in err


def drawn(monkeypatch, study, kind):
    """The figure `plot_study` draws, kept open to be looked into."""
    from hypernas import plots

    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda plt, fig, path: kept.append(fig))
    plots.plot_study(study, kind, "unused.png")
    return kept[0]


def test_the_history_leaves_out_what_was_never_scored_and_says_so(limited, monkeypatch):
    cfg, *_ = limited
    study = load_study(cfg.storage_url, "b")
    fig = drawn(monkeypatch, study, "history")
    ax = fig.axes[0]
    infeasible = study.user_attrs["infeasible_trials"]
    assert f"{infeasible} over a limit" in ax.get_title() and "left out" in ax.get_title()
    low, _ = ax.get_ylim()
    assert low > 0.05  # no score of 0 that an unscored trial never had stretches the axis


def test_the_pareto_plot_of_latency_has_its_unit_one_axis_and_the_second_objectives_history(monkeypatch, tmp_path):
    monkeypatch.setattr(budget, "LATENCY_MAX_SECONDS", 0.02)
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, study="lp", runs=str(tmp_path), trials=12, trial_batch=6,
                       fit=FIT, top_k=2, final_epochs=1, samples=1, objectives=("score", "latency"), sampler="nsga2")
    run_search(cfg, progress=False)
    study = load_study(cfg.storage_url, "lp")
    fig = drawn(monkeypatch, study, "pareto")
    main_ax = next(a for a in fig.axes if a.get_xlabel())
    assert main_ax.get_xlabel() == "latency (ms per batch-1 pass)" and "score" in main_ax.get_ylabel()
    assert not any("trained" in a.get_ylabel() for a in fig.axes)  # no second y axis for the truth
    assert len([a for a in fig.axes if a.get_legend()]) == 1  # one legend
    texts = {t.get_text() for t in main_ax.texts}
    trained = [t for t in study.trials if "trained_accuracy" in t.user_attrs]
    assert trained and all(f"{t.user_attrs['trained_accuracy']:.3f}" in texts for t in trained)
    history = drawn(monkeypatch, study, "history")
    assert any(a.get_ylabel() == "latency (ms per batch-1 pass)" for a in history.axes)  # the second objective


def test_a_wide_axis_is_logarithmic_with_ticks_that_read_as_numbers():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hypernas.plots import _log_if_wide

    fig, ax = plt.subplots()
    values = [300, 1_000, 5_000, 30_000]
    ax.scatter(values, [0.1, 0.2, 0.3, 0.4])
    _log_if_wide(ax, values, axis="x")
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ax.get_xscale() == "log" and len(labels) >= 4  # not one lonely tick
    assert all(label.replace(",", "").replace("−", "").isdigit() for label in labels)  # 500, 1000, 2000, not 10^3
    plt.close(fig)
