"""Rank the architectures of the ground-truth table with each scorer, side by side.

Ground truth is the mean test accuracy over the table's seeds; the noise ceiling is the
Kendall tau between seed 0 and seed 1 of the same architectures. Every scorer ranks the
same architectures in the same run, and its cost is timed there too (seconds per
architecture; the hypernetwork's own training is not in it, the run prints it apart).

Scorers (`--scorers`, a comma list of these keys; default all): the hypernetwork's score
and validation accuracy (`hypernet_score`, `hypernet_accuracy`), `params`, the average of
the hypernetwork's and the parameter count's ranks (`hypernet_params`), the same two with the
score on training samples instead of the validation slice (`hypernet_score_train`,
`hypernet_params_train`; `hypernas.score` says why), `flops`, the
zero-cost proxies of `hypernas.proxies` (`synflow`, `jacob_cov`, `naswot`, `snip`,
`grad_norm`) and `one_epoch` (one epoch of the normal protocol without the validation
slice, scored on that slice). Nothing here looks at the test split except the truth.

Choices: the data proxies use the first 64 samples of the validation slice (the batch
Abdelfattah et al. use on NB201). Per architecture, with one thread on the reference cells,
they cost ~15 ms (synflow), ~30 ms (jacob_cov, snip, grad_norm) and ~50 ms (naswot);
one-epoch training ~1 s. 128 samples would cost up to 4x more and wreck jacob_cov: MNIST-1D
has 40 input values, so more samples than that make every Jacobian correlation matrix
rank deficient (on the disjoint dev table, jacob_cov's tau was 0.16 / 0.31 / -0.08 at
32 / 64 / 128 samples). Proxy weights and one-epoch training are seeded by `--seed`.

Without `--hypernet`, a hypernetwork is trained with the default `FitConfig` into
`--runs`/hypernet.pt (rerunning resumes it; a finished one is reused).

Usage:
    python -m hypernas.bench.ranking --threads 2 --out-md runs/bench_ranking/ranking.md \
        --out-png runs/bench_ranking/ranking.png
    python -m hypernas.bench.ranking --hypernet runs/ref/hypernet.pt --limit 30 --scorers synflow,naswot
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from hypernas.bench import report, retraining
from hypernas.bench.ground_truth import DEFAULT_TABLE, PROTOCOL
from hypernas.bench.metrics import ranking_metrics
from hypernas.bench.table import Table, noise_ceiling, read_table
from hypernas.config import FitConfig
from hypernas.data import Dataset, load_dataset, load_dataset_like
from hypernas.errors import HypernasError
from hypernas.ghn.checkpoint import load_checkpoint, load_hypernet
from hypernas.ghn.fit import fit_hypernet
from hypernas.graph import flops, param_count
from hypernas.proxies import PROXIES, one_epoch
from hypernas.score import Scorer
from search_spaces import nb201

PROXY_BATCH = 64  # samples of the validation slice for the data proxies (see above)


def hypernet_scorer(path: str, data: Dataset, samples: int = 1, key: str = "score", split: str = "val") -> Callable:
    """The hypernetwork's score (exp(-loss)), or with key='accuracy' its accuracy, on the
    validation slice or (split='train') as many training samples (`hypernas.score`)."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        results = Scorer.from_checkpoint(path, data, samples=samples, split=split).score(graphs)
        return [getattr(r, key) for r in results]

    return score


def param_scorer(data: Dataset) -> Callable:
    return lambda graphs: [param_count(G, data.ndim) for G in graphs]


def rank_average(*scorers: Callable) -> Callable:
    """A scorer that averages the ranks its scorers give (equal weights: nothing to fit)."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        return list(np.mean([stats.rankdata(s(graphs)) for s in scorers], axis=0))

    return score


def proxy_scorer(name: str, data: Dataset, seed: int, batch: int = PROXY_BATCH) -> Callable:
    """A zero-cost proxy of `hypernas.proxies` on the first `batch` samples of the validation slice."""
    x, y, fn = data.x_val[:batch], data.y_val[:batch], PROXIES[name]

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        return [fn(G, x, y, seed) for G in tqdm(graphs, desc=name, unit="arch", leave=False)]

    return score


def one_epoch_scorer(data: Dataset, seed: int) -> Callable:
    """Validation accuracy after one epoch of normal training (without the validation slice)."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        return [one_epoch(G, data, seed) for G in tqdm(graphs, desc="one-epoch training", unit="arch")]

    return score


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
    "flops": ("FLOPs", lambda s: lambda gs: [flops(G, s.data.input_size) for G in gs]),
    **{name: (name, lambda s, name=name: proxy_scorer(name, s.data, s.seed)) for name in PROXIES},
    "one_epoch": ("one-epoch training", lambda s: one_epoch_scorer(s.data, s.seed)),
}
HYPERNET_SCORERS = tuple(k for k in SCORERS if k.startswith("hypernet"))


def prepare_hypernet(path: str | None, runs_dir: str, data: Dataset) -> str:
    """`path` checked against the data, or a hypernetwork trained (resumably) into `runs_dir`."""
    if path:
        load_hypernet(path, data=data)  # refuse a checkpoint made for other data before any work
        return path
    out = os.path.join(runs_dir, "hypernet.pt")
    print(f"training the hypernetwork (default FitConfig; resumed, or reused when finished): {out}", flush=True)
    fit_hypernet(nb201.SPACE, PROTOCOL, data, FitConfig(), out=out, resume=True)
    return out


def run(table: Table, scorers: dict[str, Callable], data: Dataset) -> list[dict]:
    """One row per scorer: its metrics against the mean accuracy, seconds per architecture, and its scores."""
    graphs = [nb201.from_string(a, data.in_channels, data.num_classes, **PROTOCOL) for a in table.archs]
    truth = table.mean
    rows = []
    for name, scorer in scorers.items():
        start = time.perf_counter()
        scores = [float(v) for v in scorer(graphs)]
        seconds = (time.perf_counter() - start) / len(graphs)
        rows.append({"scorer": name, **ranking_metrics(scores, truth), "seconds_per_arch": seconds, "scores": scores})
    return rows


def ceiling_note(path: str, table: Table) -> list[str]:
    """Where the table's cells were trained again (`bench retraining`'s extra seeds, beside it):
    the tau a scorer knowing each cell's expected accuracy would reach, to read every row against."""
    extra_path = path.replace(".csv", "_seeds2-5.csv")
    if not os.path.exists(extra_path):
        return []
    try:
        ceiling = retraining.perfect_scorer_tau(retraining.retraining_rows(table, read_table(extra_path)))
    except HypernasError as err:  # a note, not the benchmark: say why it is missing
        return [f"No ceiling from {os.path.basename(extra_path)}: {err}"]
    return [] if ceiling is None else [f"Ceiling of any scorer on this truth (a perfect predictor of expected "
                                       f"accuracy, extrapolated from the runs in {os.path.basename(extra_path)}): "
                                       f"Kendall tau {ceiling:.3f}."]


def markdown(rows: list[dict], table: Table, notes: tuple[str, ...] = ()) -> str:
    """The metrics table, preceded by the ground truth's summary and any `notes` lines."""
    lines = [f"{len(table.archs)} architectures; ground truth = mean test accuracy over seeds "
             f"{sorted(table.by_seed)}; seed-to-seed Kendall tau = {noise_ceiling(table):.3f}; "
             f"best mean accuracy {max(table.mean):.4f}.", *notes, "",
             "| scorer | Kendall tau | Spearman rho | precision@10% | top-1 true acc | s/arch |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scorer']} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | "
                     f"{r['precision_at_top']:.2f} | {r['top1_true']:.4f} | {r['seconds_per_arch']:.4f} |")
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


def plot(rows: list[dict], table: Table, path: str) -> None:
    """One scatter panel per scorer, score against true accuracy, tau in the title; to a PNG file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = np.asarray(table.mean)
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
    fig.suptitle(f"{len(table.archs)} NB201 cells on MNIST-1D; seed-to-seed tau = {noise_ceiling(table):.3f}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the comparison; print the Markdown table and return its rows (with the scores)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hypernet", help="a trained checkpoint; otherwise one is trained into --runs")
    ap.add_argument("--runs", default=os.path.join("runs", "bench_ranking"), help="folder for the hypernetwork it trains")
    ap.add_argument("--table", default=DEFAULT_TABLE)
    ap.add_argument("--limit", type=int, help="only the first N architectures of the table")
    ap.add_argument("--scorers", default=",".join(SCORERS), help=f"comma list of: {', '.join(SCORERS)}")
    ap.add_argument("--samples", type=int, default=1, help="hypernetwork draws per score")
    ap.add_argument("--seed", type=int, default=0, help="proxy weights and one-epoch training")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out-md")
    ap.add_argument("--out-png")
    args = ap.parse_args(argv)
    chosen = [k.strip() for k in args.scorers.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in SCORERS]
    if unknown or not chosen:
        ap.error(f"unknown scorer(s) {unknown}; choose from {', '.join(SCORERS)}")
    if args.limit is not None and args.limit < 2:
        ap.error("--limit needs at least 2 architectures to rank")
    torch.set_num_threads(args.threads)
    # A given hypernetwork is scored on its own validation slice (it may have been trained
    # with another --val-fraction); the proxies then use that slice too.
    data = load_dataset_like(load_checkpoint(args.hypernet)["data"]) if args.hypernet else load_dataset("mnist1d")
    table = read_table(args.table).head(args.limit)
    notes = [f"Data proxies: first {PROXY_BATCH} samples of the validation slice; weights and one-epoch "
             f"training seeded with {args.seed}; {args.threads} thread(s).", *ceiling_note(args.table, table)]
    hypernet = None
    if any(k in HYPERNET_SCORERS for k in chosen):
        start = time.perf_counter()
        hypernet = prepare_hypernet(args.hypernet, args.runs, data)
        notes.append(f"Hypernetwork {hypernet} (ready in {time.perf_counter() - start:.0f} s, not counted in s/arch).")
    setup = Setup(data, hypernet, args.samples, args.seed)
    scorers = {SCORERS[k][0]: SCORERS[k][1](setup) for k in chosen}
    rows = run(table, scorers, data)
    text = markdown(rows, table, tuple(notes))
    report(text, args.out_md)
    if args.out_png:
        if os.path.dirname(args.out_png):
            os.makedirs(os.path.dirname(args.out_png), exist_ok=True)
        plot(rows, table, args.out_png)
    return rows


if __name__ == "__main__":
    main()
