"""Figures of a study, made with matplotlib (imported lazily: the engine never needs a display).

`history` and `pareto` are Optuna's own (`optuna.visualization.matplotlib`), which plot the
study's COMPLETE trials: a trial over a limit or a duplicate is stored PRUNED
(`hypernas.study.sync`), so neither distorts their axes, and the figure says how many were
left out. On top of them hypernas adds what is its own: the unit of latency, the second
objective's history, the finalists' trained accuracy. `ranking` (score against trained
accuracy) has no Optuna counterpart.

Usage:
    plot_study(study, "history", "history.png")   # history, pareto, ranking or arch
"""

from __future__ import annotations

import math
import warnings

import optuna

from hypernas.drawing import draw_architecture, pyplot, save_figure
from hypernas.errors import HypernasError, OptionError

PLOTS = ("history", "pareto", "ranking", "arch")
UNITS = {"latency": "latency (ms per batch-1 pass)", "params": "parameters", "flops": "FLOPs (multiply-accumulates)"}
FIGURE = (7.5, 4.8)  # inches, at 120 dpi: 900 x 576 pixels, a size read without zooming


def plot_study(study: optuna.Study, kind: str, path: str, space=None) -> str | None:
    """One figure of a study: `history` (score per trial and the best so far, and the second
    objective), `pareto` (score against the second objective, the front and the finalists'
    trained accuracy), `ranking` (score against trained accuracy, with the score's spread and
    the trained accuracy's 95% interval, by final round) or `arch` (the best trained finalist,
    `hypernas.finals.best_trial`; `space` is needed only for a user's own space). Returns a
    line saying what was drawn, or None."""
    from hypernas.study.attrs import completed

    complete = completed(study)
    if not complete:
        raise HypernasError(f"study {study.study_name!r} has no completed trials to plot")
    if kind not in PLOTS:
        raise OptionError(f"unknown plot {kind!r}; choose from {', '.join(PLOTS)}")
    if kind == "arch":
        return _arch(study, path, space)
    plt = pyplot()
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    # Optuna's plots switch matplotlib to its ggplot style for good; held to this figure, and
    # the ranking drawn alike.
    with warnings.catch_warnings(), plt.rc_context(), plt.style.context("ggplot"):
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # Optuna's matplotlib plots
        fig, said = {"history": _history, "pareto": _pareto, "ranking": _ranking}[kind](study, complete, names, plt)
        save_figure(plt, fig, path)
    return said


def _left_out_note(study: optuna.Study) -> str:
    """What the chart leaves out, on a line of its own: the trials over a limit and the
    duplicates, stored PRUNED since they have no result of their own ("" when none)."""
    pruned = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.PRUNED])
    infeasible = sum(not t.user_attrs.get("feasible", True) for t in pruned)
    copies = sum("duplicate_of" in t.user_attrs and t.user_attrs.get("feasible", True) for t in pruned)
    note = " and ".join(x for x in (f"{infeasible} over a limit" if infeasible else "",
                                    f"{copies} duplicates" if copies else "") if x)
    return f"\n({note} left out)" if note else ""


def _history(study, complete, names, plt):
    from optuna.visualization.matplotlib import plot_optimization_history

    several = len(study.directions) > 1
    # One objective: Optuna's own best-so-far line; with several it draws none for a chosen target.
    ax = plot_optimization_history(study, target=(lambda t: t.values[0]) if several else None,
                                   target_name=f"{names[0]} (predicted)")
    fig = ax.figure
    if several:
        ordered = sorted(complete, key=lambda t: t.number)
        best = [max(t.values[0] for t in ordered[: i + 1]) for i in range(len(ordered))]
        ax.step([t.number for t in ordered], best, where="post", color="C1", label="best so far")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{study.study_name}: {len(complete)} scored trials" + _left_out_note(study), fontsize=10)
    if several:  # the second objective, below on the same trial axis
        from matplotlib.gridspec import GridSpec

        fig.set_size_inches(FIGURE[0], FIGURE[1] * 1.6)
        grid = GridSpec(2, 1, figure=fig, height_ratios=(3, 2))
        ax.set_subplotspec(grid[0])
        ax.set_xlabel("")
        below = fig.add_subplot(grid[1], sharex=ax)
        below.scatter([t.number for t in complete], [t.values[1] for t in complete], s=10, color="C0")
        below.set(xlabel="trial", ylabel=UNITS.get(names[1], names[1]))
        _log_if_wide(below, [t.values[1] for t in complete], axis="y")
    else:
        fig.set_size_inches(*FIGURE)
    fig.tight_layout()
    return fig, None


def _pareto(study, complete, names, plt):
    if len(study.directions) < 2:
        raise OptionError("a Pareto plot needs a study with two objectives (--objectives score,params)")
    from optuna.visualization.matplotlib import plot_pareto_front

    second = UNITS.get(names[1], names[1])
    ax = plot_pareto_front(study, targets=lambda t: (t.values[1], t.values[0]),
                           target_names=[second, f"{names[0]} (predicted)"])
    fig = ax.figure
    fig.set_size_inches(*FIGURE)
    _log_if_wide(ax, [t.values[1] for t in complete], axis="x")
    trained = [t for t in complete if "trained_accuracy" in t.user_attrs]
    if trained:  # the truth of the finalists, written at their points: one axis, no second scale to misread
        ax.scatter([t.values[1] for t in trained], [t.values[0] for t in trained], s=160, facecolors="none",
                   edgecolors="C2", linewidths=2, zorder=4, label="trained finalist (true accuracy)")
        for t in trained:
            ax.annotate(f"{t.user_attrs['trained_accuracy']:.3f}", (t.values[1], t.values[0]), xytext=(8, -14),
                        textcoords="offset points", fontsize=8, color="C2", fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
    ax.set_title(f"{study.study_name}: Pareto front of {len(complete)} scored trials" + _left_out_note(study),
                 fontsize=10)
    ax.legend(loc="best", fontsize=8)  # one legend, placed where it covers least
    fig.tight_layout()
    return fig, None


def _log_if_wide(ax, values, axis: str) -> None:
    """A log scale where the values span more than a decade, with ticks that read as numbers."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    positive = [v for v in values if v > 0]
    if not positive or max(positive) / min(positive) < 10:
        return
    getattr(ax, f"set_{axis}scale")("log")
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    target.set_major_formatter(formatter)
    target.set_minor_formatter(NullFormatter())


def _ranking(study, complete, names, plt):
    from scipy import stats

    trained = sorted((t for t in complete if "trained_accuracy" in t.user_attrs), key=lambda t: t.number)
    if len(trained) < 2:
        raise HypernasError("a ranking plot needs at least 2 trained trials (run the final training)")
    fig, ax = plt.subplots(figsize=FIGURE)
    rounds = sorted({t.user_attrs.get("final_round", 1) for t in trained})
    for k, r in enumerate(rounds):
        these = [t for t in trained if t.user_attrs.get("final_round", 1) == r]
        x = [t.values[0] for t in these]
        y = [t.user_attrs["trained_accuracy"] for t in these]
        low, high = zip(*(_interval(t) for t in these))
        ax.errorbar(x, y, xerr=[t.user_attrs.get("score_std", 0.0) for t in these],
                    yerr=[[a - lo for a, lo in zip(y, low)], [hi - a for a, hi in zip(y, high)]],
                    fmt="os^Dv"[k % 5], color=f"C{k}", ecolor=f"C{k}", elinewidth=1, capsize=3, markersize=6,
                    label=f"round {r}" if len(rounds) > 1 else "finalist")
        for t, a, b in zip(these, x, y):
            ax.annotate(f"{t.number}", (a, b), xytext=(5, 4), textcoords="offset points", fontsize=8)
    tau = stats.kendalltau([t.values[0] for t in trained], [t.user_attrs["trained_accuracy"] for t in trained]).statistic
    shown = "n/a (ties)" if tau is None or math.isnan(tau) else f"{tau:.3f}"
    ax.set(xlabel=f"{names[0]} (predicted weights, validation) ± its spread over draws",
           ylabel="trained test accuracy (95% interval)",
           title=f"{study.study_name}: Kendall tau {shown} over {len(trained)} trained")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig, None


def _interval(t: optuna.trial.FrozenTrial) -> tuple[float, float]:
    """The trained accuracy's 95% interval as the final stage recorded it (`hypernas.certainty`:
    over seeds, or the test sample's Wilson interval); else the test sample's, where the trial
    records its size; else the point (an older study)."""
    from hypernas.certainty import wilson

    acc, n = t.user_attrs["trained_accuracy"], t.user_attrs.get("trained_test_samples")
    if "trained_low" in t.user_attrs:  # held around the accuracy, whatever the storage holds
        return min(t.user_attrs["trained_low"], acc), max(t.user_attrs["trained_high"], acc)
    return wilson(acc, n) if n else (acc, acc)


def _arch(study: optuna.Study, path: str, space) -> str:
    from hypernas.finals import best_said, best_trial
    from hypernas.study.record import study_space, trial_graph

    best = best_trial(study)
    G = trial_graph(study, best, space)
    try:
        sketch = study_space(study, space).sketch
    except HypernasError:  # a user's space it was not given: graph JSON draws without its code
        sketch = None
    trained = best.user_attrs.get("trained_accuracy")
    said = f"trained accuracy {trained:.4f}" if trained is not None else f"score {best.values[0]:.4f} (untrained)"
    draw_architecture(G, path, sketch=sketch, title=f"best trial {best.number}: {said}")
    return best_said(study, best)
