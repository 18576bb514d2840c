"""Figures of a study, made with matplotlib (imported lazily: the engine never needs a display).

Usage:
    plot_study(study, "history", "history.png")   # history, pareto, ranking or arch
"""

from __future__ import annotations

from hypernas.drawing import draw_architecture, pyplot, save_figure
from hypernas.errors import HypernasError

PLOTS = ("history", "pareto", "ranking", "arch")


def plot_study(study, kind: str, path: str, space=None) -> None:
    """One figure of a study: `history` (score per trial and the best so far), `pareto`
    (score against the second objective, front highlighted), `ranking` (score against
    trained accuracy, Kendall tau in the title) or `arch` (the best architecture; `space` is
    needed only for a user's own space, `hypernas.study.record.study_space`)."""
    from scipy import stats

    from hypernas.study.attrs import completed

    trials = completed(study)
    if not trials:
        raise HypernasError(f"study {study.study_name!r} has no completed trials to plot")
    if kind == "arch":
        from hypernas.study.record import pick_trial, study_space, trial_graph

        best = pick_trial(study, "best")
        G = trial_graph(study, best, space)
        try:
            sketch = study_space(study, space).sketch
        except HypernasError:  # a user's space it was not given: graph JSON draws without its code
            sketch = None
        draw_architecture(G, path, sketch=sketch, title=f"best trial {best.number}: score {best.values[0]:.4f}")
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    if kind == "history":
        scored = [t for t in trials if t.user_attrs.get("feasible", True)]  # one over a limit has no score
        numbers, scores = [t.number for t in scored], [t.values[0] for t in scored]
        best = [max(scores[: i + 1]) for i in range(len(scores))]
        ax.scatter(numbers, scores, s=6, alpha=0.4, label="trial score")
        ax.step(numbers, best, where="post", color="C3", label="best so far")
        ax.set(xlabel="trial", ylabel=names[0], title=f"{study.study_name}: search history")
        ax.legend()
    elif kind == "pareto":
        if len(study.directions) < 2:
            raise HypernasError("a Pareto plot needs a study with two objectives (--objectives score,params)")
        from hypernas.finals import pareto_front

        feasible = [t for t in trials if t.user_attrs.get("feasible", True) and "duplicate_of" not in t.user_attrs]
        front = sorted(pareto_front(feasible, study.directions), key=lambda t: t.values[1])
        ax.scatter([t.values[1] for t in feasible], [t.values[0] for t in feasible], s=6, alpha=0.3, label="trials")
        ax.plot([t.values[1] for t in front], [t.values[0] for t in front], "o-", color="C3", label="predicted front")
        ax.set(xlabel=names[1], ylabel=f"{names[0]} (predicted)",
               title=f"{study.study_name}: Pareto front ({len(front)} trials)")
        trained = [t for t in feasible if "trained_accuracy" in t.user_attrs]
        if trained:  # the truth of the finalists, on an axis of its own
            truth = ax.twinx()
            truth.scatter([t.values[1] for t in trained], [t.user_attrs["trained_accuracy"] for t in trained],
                          marker="*", s=120, color="C2", zorder=3, label="finalists: trained accuracy")
            for t in trained:
                truth.annotate(str(t.number), (t.values[1], t.user_attrs["trained_accuracy"]), fontsize=7,
                               xytext=(4, 4), textcoords="offset points")
            truth.set_ylabel("trained test accuracy (finalists)")
            truth.legend(loc="lower right")
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels on a log axis overlap
        ax.legend()
    elif kind == "ranking":
        trained = [t for t in trials if "trained_accuracy" in t.user_attrs]
        if len(trained) < 2:
            raise HypernasError("a ranking plot needs at least 2 trained trials (run the final training)")
        x = [t.values[0] for t in trained]
        y = [t.user_attrs["trained_accuracy"] for t in trained]
        tau = stats.kendalltau(x, y).statistic
        ax.scatter(x, y)
        for t, a, b in zip(trained, x, y):
            ax.annotate(str(t.number), (a, b), fontsize=7)
        ax.set(xlabel=f"{names[0]} (predicted weights, validation)", ylabel="trained test accuracy",
               title=f"{study.study_name}: Kendall tau = {tau:.3f} over {len(trained)} trained")
    else:
        raise HypernasError(f"unknown plot {kind!r}; choose from {', '.join(PLOTS)}")
    fig.tight_layout()
    save_figure(plt, fig, path)
