"""`python -m benchmarks.ranking`: rank a truth's architectures with each scorer, side by side.

Ground truth is the mean test accuracy over the truth's seeds (`benchmarks.core.truths`), printed
with its noise ceiling: the tau a scorer knowing each architecture's expected accuracy would
reach. Every scorer ranks the same architectures in the same run, and its cost is timed there
too (seconds per architecture; the hypernetwork's own training is not in it, the run prints it
apart). Each scorer's Kendall tau is compared with the hypernetwork score's: the difference,
its 95% interval (a paired bootstrap over the architectures) and a verdict.

Scorers (`--scorers`, a comma list of these keys; default all): the hypernetwork's score
and validation accuracy (`hypernet_score`, `hypernet_accuracy`), `params`, the average of
the hypernetwork's and the parameter count's ranks (`hypernet_params`), the same two with the
score on training samples instead of the validation slice (`hypernet_score_train`,
`hypernet_params_train`; `hypernas.score` says why), `flops`, the zero-cost proxies of
`hypernas.proxies` (`synflow`, `jacob_cov`, `naswot`, `snip`, `grad_norm`; costs per
architecture with one thread on the reference cells: ~15 ms for synflow, ~30 ms for jacob_cov,
snip and grad_norm, ~50 ms for naswot) and `one_epoch` (one epoch of the normal protocol without
the validation slice, scored on that slice, ~1 s). Nothing here looks at the test split except the truth.

Without `--hypernet`, a hypernetwork is trained with the default `FitConfig` into
`--hypernets`/hypernet.pt (rerunning resumes it; a finished one is reused).

Usage:
    python -m benchmarks.ranking --threads 2 --out-md runs/bench_ranking/ranking.md \
        --out-png runs/bench_ranking/ranking.png
    python -m benchmarks.ranking --hypernet runs/ref/hypernet.pt --limit 30 --scorers synflow,naswot
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from benchmarks.core.report import command, compared, table
from benchmarks.core.scorers import (
    flops_scorer,
    hypernet_scorer,
    one_epoch_scorer,
    param_scorer,
    proxy_scorer,
    rank_average,
)
from benchmarks.core.stats import RESAMPLES, bootstrap, kendall_tau, ranking_metrics
from benchmarks.core.tables import SPACE_OPTIONS
from benchmarks.core.truths import TRUTHS, Loaded, describe, load_table
from hypernas.config import FitConfig
from hypernas.data import Dataset, load_dataset_like
from hypernas.ghn.checkpoint import load_checkpoint, load_hypernet
from hypernas.ghn.fit import fit_hypernet
from hypernas.options import check, option
from hypernas.proxies import PROXIES


@dataclass
class Setup:
    """What the scorers are built from."""

    data: Dataset
    hypernet: str | None  # checkpoint path; needed by the hypernetwork scorers only
    samples: int = 1  # hypernetwork draws per score
    seed: int = 0  # proxy weights and one-epoch training


# key (for --scorers) -> (label in the table, factory: Setup -> scorer of a list of graphs)
SCORERS: dict[str, tuple[str, Callable[[Setup], Callable[[list[nx.DiGraph]], list[float]]]]] = {
    "hypernet_score": ("hypernetwork score", lambda s: hypernet_scorer(s.hypernet, s.data, s.samples, "score")),
    "hypernet_accuracy": ("hypernetwork validation accuracy",
                          lambda s: hypernet_scorer(s.hypernet, s.data, s.samples, "accuracy")),
    "params": ("parameter count", lambda s: param_scorer(s.data)),
    "hypernet_params": ("hypernetwork score and parameter count, rank average",
                        lambda s: rank_average(hypernet_scorer(s.hypernet, s.data, s.samples), param_scorer(s.data))),
    "hypernet_score_train": ("hypernetwork score on training samples",
                             lambda s: hypernet_scorer(s.hypernet, s.data, s.samples, "score", "train")),
    "hypernet_params_train": ("hypernetwork score on training samples and parameter count, rank average",
                              lambda s: rank_average(hypernet_scorer(s.hypernet, s.data, s.samples, "score", "train"),
                                                     param_scorer(s.data))),
    "flops": ("FLOPs", lambda s: flops_scorer(s.data)),
    **{name: (name, lambda s, name=name: proxy_scorer(name, s.data, s.seed)) for name in PROXIES},
    "one_epoch": ("one-epoch training", lambda s: one_epoch_scorer(s.data, s.seed)),
}
HYPERNET_SCORERS = tuple(k for k in SCORERS if k.startswith("hypernet"))


@dataclass(frozen=True)
class Config:
    truth: str = option("nb201_mnist1d", "the truth ranked", choices=tuple(TRUTHS))
    hypernet: str | None = option(None, "a trained checkpoint; otherwise one is trained into --hypernets")
    hypernets: str = option(os.path.join("runs", "bench_ranking"), "folder for the hypernetwork it trains")
    limit: int | None = option(None, "only the first N architectures of the table", low=2)
    scorers: tuple[str, ...] = option(tuple(SCORERS), "comma list of scorers", choices=tuple(SCORERS))
    samples: int = option(1, "hypernetwork draws per score", low=1, high=1000)
    seed: int = option(0, "proxy weights, one-epoch training and the bootstrap", low=0)
    threads: int = option(1, "torch threads", low=1)
    resamples: int = option(RESAMPLES, "bootstrap resamples of each interval", low=10)
    out_png: str | None = option(None, "also draw each scorer's scatter against the truth to this PNG")
    custom: dict = field(default_factory=dict)  # scorers after SCORERS', label -> scorer of graphs (tests)

    def __post_init__(self):
        check(self)


def prepare_hypernet(path: str | None, folder: str, loaded: Loaded) -> str:
    """`path` checked against the data, or a hypernetwork trained (resumably) into `folder`."""
    if path:
        load_hypernet(path, data=loaded.data)  # refuse a checkpoint made for other data before any work
        return path
    out = os.path.join(folder, "hypernet.pt")
    print(f"training the hypernetwork (default FitConfig; resumed, or reused when finished): {out}", flush=True)
    fit_hypernet(loaded.space, SPACE_OPTIONS.get(loaded.space.name, {}), loaded.data, FitConfig(), out=out, resume=True)
    return out


def rank(loaded: Loaded, scorers: dict[str, Callable], resamples: int = RESAMPLES, seed: int = 0) -> dict:
    """One row per scorer: its metrics against the truth, seconds per architecture and its
    scores; and each scorer's tau minus the first scorer's, with its interval."""
    truth = loaded.acc
    rows = []
    for name, scorer in scorers.items():
        start = time.perf_counter()
        scores = [float(v) for v in scorer(loaded.graphs)]
        seconds = (time.perf_counter() - start) / len(loaded.graphs)
        rows.append({"scorer": name, **ranking_metrics(scores, truth), "seconds_per_arch": seconds, "scores": scores})
    values = {r["scorer"]: np.array(r["scores"]) for r in rows}
    first = rows[0]["scorer"]

    def leads(cells: np.ndarray, _runs: np.ndarray) -> dict[str, float]:
        taus = {s: kendall_tau(v[cells], truth[cells]) for s, v in values.items()}
        return {s: taus[s] - taus[first] for s in taus if s != first}

    return {"truth": describe(loaded), "rows": rows, "first": first,
            "leads": bootstrap(leads, len(truth), resamples=resamples, seed=seed), "acc": truth}


def run(config: Config) -> dict:
    import torch

    torch.set_num_threads(config.threads)
    # A given hypernetwork is scored on its own validation slice (it may have been trained
    # with another --val-fraction); the proxies then use that slice too.
    data = load_dataset_like(load_checkpoint(config.hypernet)["data"]) if config.hypernet else None
    loaded = load_table(config.truth, TRUTHS[config.truth], config.limit, data)
    notes = [f"Data proxies: first 64 samples of the validation slice; weights and one-epoch training seeded with "
             f"{config.seed}; {config.threads} thread(s)."]
    hypernet = None
    if any(k in HYPERNET_SCORERS for k in config.scorers):
        start = time.perf_counter()
        hypernet = prepare_hypernet(config.hypernet, config.hypernets, loaded)
        notes.append(f"Hypernetwork {hypernet} (ready in {time.perf_counter() - start:.0f} s, not counted in s/arch).")
    setup = Setup(loaded.data, hypernet, config.samples, config.seed)
    scorers = {SCORERS[k][0]: SCORERS[k][1](setup) for k in config.scorers} | config.custom
    result = rank(loaded, scorers, config.resamples, config.seed) | {"notes": notes}
    if config.out_png:
        if os.path.dirname(config.out_png):
            os.makedirs(os.path.dirname(config.out_png), exist_ok=True)
        plot(result, config.out_png)
    return result


def markdown(result: dict) -> str:
    """The metrics table, preceded by the truth's summary and the notes."""
    first, leads = result["first"], result["leads"]
    lines = [f"{result['truth']['name']}: {result['truth']['summary']}.", *result["notes"], ""]
    lines += table(["scorer", "Kendall tau", f"tau minus {first}'s (95% interval)", "Spearman rho", "precision@10%",
                    "top-1 true acc", "s/arch"],
                   [[r["scorer"], f"{r['kendall_tau']:.3f}", "" if r["scorer"] == first else compared(leads[r["scorer"]], places=3),
                     f"{r['spearman_rho']:.3f}", f"{r['precision_at_top']:.2f}", f"{r['top1_true']:.4f}",
                     f"{r['seconds_per_arch']:.4f}"] for r in result["rows"]])
    return "\n".join(lines)


def _axis_scale(ax, scores: np.ndarray) -> None:
    """Log scale for positive scores spanning over two decades (synflow), few ticks otherwise."""
    positive = scores[scores > 0]
    if len(positive) < 2 or positive.max() / positive.min() < 100 or (scores < 0).any():
        ax.locator_params(axis="x", nbins=4)  # long tick labels (FLOPs) would overlap
        return
    if (scores == 0).any():  # e.g. a dead network's synflow: keep it visible
        ax.set_xscale("symlog", linthresh=float(positive.min()))
        first, last = math.ceil(math.log10(positive.min())), math.floor(math.log10(positive.max()))
        ax.set_xticks([0.0] + [10.0**e for e in range(first, last + 1, 2)])  # none inside the linear part
    else:
        ax.set_xscale("log")


def plot(result: dict, path: str) -> None:
    """One scatter panel per scorer, score against true accuracy, tau in the title; to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, truth = result["rows"], np.asarray(result["acc"])
    ncols = min(5, len(rows))
    nrows = math.ceil(len(rows) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.9 * nrows), squeeze=False)
    for ax, r in zip(axes.flat, rows):
        s = np.asarray(r["scores"], dtype=float)
        # A floor value far below the rest (a dead network's jacob_cov) would squash the
        # panel: draw such points at the left edge instead, marked.
        q1, q3 = np.percentile(s, [25, 75])
        far = s < q1 - 20 * (q3 - q1) if q3 > q1 else np.zeros(len(s), bool)
        ax.scatter(s[~far], truth[~far], s=7, alpha=0.6)
        _axis_scale(ax, s[~far])
        if far.any():
            left = ax.get_xlim()[0]
            ax.scatter(np.full(far.sum(), left), truth[far], marker="<", color="tab:red", s=20,
                       label=f"{far.sum()} far below, at the edge", clip_on=False)
            ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"{r['scorer']}\ntau = {r['kendall_tau']:.3f}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlabel("score", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("true accuracy", fontsize=8)
    for ax in list(axes.flat)[len(rows):]:
        ax.axis("off")
    fig.suptitle(f"{result['truth']['name']}: {len(truth)} architectures", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.ranking", doc=__doc__)


if __name__ == "__main__":
    main()
