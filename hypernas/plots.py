"""Figures made with matplotlib (imported lazily: the engine never needs a display).

Usage:
    draw_architecture(G, "arch.png")
    plot_study(study, "history", "history.png")   # history, pareto, ranking or arch
"""

from __future__ import annotations

import os

import networkx as nx

from hypernas.errors import HypernasError
from hypernas.graph import validate

# One colour per op family, so a drawing reads at a glance.
_COLOURS = {"input": "#4c72b0", "output": "#4c72b0", "conv": "#dd8452", "linear": "#dd8452", "bn": "#8172b3",
            "sum": "#55a868", "concat": "#55a868", "zero": "#c44e52", "identity": "#bbbbbb"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: str) -> None:
    """Write the figure as PNG, making its folder; an unwritable path is the user's error."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as err:
        where = f" ({err.filename})" if err.filename and err.filename != path else ""
        raise HypernasError(f"cannot write {path!r}: {err.strerror or err}{where}") from None
    finally:
        plt.close(fig)


def draw_architecture(G: nx.DiGraph, path: str, title: str | None = None) -> None:
    """Draw the DAG left to right, one column per topological generation, to a PNG file."""
    plt = _pyplot()
    info = validate(G)
    H = nx.DiGraph(G.edges)
    H.add_nodes_from(G.nodes)
    for depth, generation in enumerate(nx.topological_generations(H)):
        for n in generation:
            H.nodes[n]["depth"] = depth
    pos = nx.multipartite_layout(H, subset_key="depth")
    labels = {}
    for n in info.nodes:
        extra = n.attrs.get("kernel") if n.op.name in ("conv", "avg_pool", "max_pool") else None
        labels[n.name] = n.op.name + (f"\n{extra}" if extra else "") + (f"\n{n.shape.channels}ch" if n.op.name == "conv" else "")
    width = max(6.0, 0.45 * (max(nx.get_node_attributes(H, "depth").values()) + 1))
    fig, ax = plt.subplots(figsize=(min(width, 60.0), 5))
    colours = [_COLOURS.get(G.nodes[n]["op"], "#937860") for n in H.nodes]
    nx.draw_networkx(H, pos, ax=ax, labels=labels, node_color=colours, node_size=520, font_size=6,
                     arrowsize=8, edge_color="#666666")
    ax.set_title(title or G.graph.get("arch", f"{G.number_of_nodes()} nodes") + (" (degenerate)" if info.degenerate else ""),
                 fontsize=9)
    ax.axis("off")
    fig.tight_layout()
    _save(plt, fig, path)


PLOTS = ("history", "pareto", "ranking", "arch")


def plot_study(study, kind: str, path: str) -> None:
    """One figure of a study: `history` (score per trial and the best so far), `pareto`
    (score against the second objective, front highlighted), `ranking` (score against
    trained accuracy, Kendall tau in the title) or `arch` (the best architecture)."""
    import optuna
    from scipy import stats

    trials = [t for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])]
    if not trials:
        raise HypernasError(f"study {study.study_name!r} has no completed trials to plot")
    if kind == "arch":
        from hypernas.export import pick_trial, trial_graph

        best = pick_trial(study, "best")
        draw_architecture(trial_graph(study, best), path, title=f"best trial {best.number}: score {best.values[0]:.4f}")
        return
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    if kind == "history":
        numbers, scores = [t.number for t in trials], [t.values[0] for t in trials]
        best = [max(scores[: i + 1]) for i in range(len(scores))]
        ax.scatter(numbers, scores, s=6, alpha=0.4, label="trial score")
        ax.step(numbers, best, where="post", color="C3", label="best so far")
        ax.set(xlabel="trial", ylabel=names[0], title=f"{study.study_name}: search history")
        ax.legend()
    elif kind == "pareto":
        if len(study.directions) < 2:
            raise HypernasError("a Pareto plot needs a study with two objectives (--objectives score,params)")
        front = sorted(study.best_trials, key=lambda t: t.values[1])
        ax.scatter([t.values[1] for t in trials], [t.values[0] for t in trials], s=6, alpha=0.3, label="trials")
        ax.plot([t.values[1] for t in front], [t.values[0] for t in front], "o-", color="C3", label="Pareto front")
        ax.set(xlabel=names[1], ylabel=names[0], title=f"{study.study_name}: Pareto front ({len(front)} trials)")
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
    _save(plt, fig, path)
