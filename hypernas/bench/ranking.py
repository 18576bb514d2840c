"""Rank the architectures of the ground-truth table with each scorer, side by side.

Ground truth is the mean test accuracy over the table's seeds; the noise ceiling is the
Kendall tau between seed 0 and seed 1 of the same architectures. Every scorer ranks the
same architectures in the same run, and its cost is timed there too.

Usage:
    python -m hypernas.bench.ranking --hypernet runs/ref/hypernet.pt [--table FILE] [--out-md FILE]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import torch
from scipy import stats

from hypernas.bench.ground_truth import DEFAULT_TABLE, PROTOCOL
from hypernas.bench.metrics import ranking_metrics
from hypernas.data import Dataset, load_dataset
from hypernas.graph import flops, param_count
from hypernas.score import Scorer
from search_spaces import nb201


@dataclass
class Table:
    archs: list[str]
    by_seed: dict[int, list[float]]  # seed -> accuracy per arch, in `archs` order

    @property
    def mean(self) -> list[float]:
        return [statistics.fmean(accs) for accs in zip(*self.by_seed.values())]


def read_table(path: str = DEFAULT_TABLE) -> Table:
    """The architectures that have every seed in the table, with their accuracies."""
    rows: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["arch"]][int(r["seed"])] = float(r["test_accuracy"])
    seeds = sorted({s for accs in rows.values() for s in accs})
    archs = [a for a, accs in rows.items() if all(s in accs for s in seeds)]
    return Table(archs, {s: [rows[a][s] for a in archs] for s in seeds})


def hypernet_scorer(path: str, data: Dataset, samples: int = 1, key: str = "score") -> Callable:
    """The hypernetwork's score (exp(-validation loss)), or with key='accuracy' its validation accuracy."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        results = Scorer.from_checkpoint(path, data, samples=samples).score(graphs)
        return [getattr(r, key) for r in results]

    return score


def run(table: Table, scorers: dict[str, Callable], data: Dataset) -> list[dict]:
    """One row per scorer: its metrics against the mean accuracy, and seconds per architecture."""
    graphs = [nb201.from_string(a, data.in_channels, data.num_classes, **PROTOCOL) for a in table.archs]
    truth = table.mean
    rows = []
    for name, scorer in scorers.items():
        start = time.perf_counter()
        scores = scorer(graphs)
        seconds = (time.perf_counter() - start) / len(graphs)
        rows.append({"scorer": name, **ranking_metrics(scores, truth), "seconds_per_arch": seconds})
    return rows


def noise_ceiling(table: Table) -> float:
    """Kendall tau between the first two seeds: how consistently a second training ranks."""
    a, b = list(table.by_seed.values())[:2]
    return float(stats.kendalltau(a, b).statistic)


def markdown(rows: list[dict], table: Table) -> str:
    lines = [f"{len(table.archs)} architectures; ground truth = mean test accuracy over seeds "
             f"{sorted(table.by_seed)}; seed-to-seed Kendall tau = {noise_ceiling(table):.3f}; "
             f"best mean accuracy {max(table.mean):.4f}.", "",
             "| scorer | Kendall tau | Spearman rho | precision@10% | top-1 true acc | s/arch |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scorer']} | {r['kendall_tau']:.3f} | {r['spearman_rho']:.3f} | "
                     f"{r['precision_at_top']:.2f} | {r['top1_true']:.4f} | {r['seconds_per_arch']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hypernet", required=True)
    ap.add_argument("--table", default=DEFAULT_TABLE)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out-md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist1d")
    table = read_table(args.table)
    scorers = {
        "hypernetwork score": hypernet_scorer(args.hypernet, data, args.samples, "score"),
        "hypernetwork validation accuracy": hypernet_scorer(args.hypernet, data, args.samples, "accuracy"),
        "parameter count": lambda gs: [param_count(G, 1) for G in gs],
        "FLOPs": lambda gs: [flops(G, data.input_size) for G in gs],
    }
    text = markdown(run(table, scorers, data), table)
    print(text)
    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
