"""Which design of `--final-rounds` finds the best network? Development tables only.

Replays `hypernas bench finals` on the development truths (the same budgets, K = 5, 10, 20,
R = 2 and 4, a training's label one seed's accuracy, the best all-seed mean reported) for
three designs of the rounds, beside the plain top K by score and by size:
- `current`: round 1 is the top by score; each later round refits `hypernas.recalibrate`'s
  model and takes its mean + 1 sd;
- `hedged`: round 1 takes in turn from the score's order and the size's (the largest first),
  so that its labels span both and the model can learn which one this data rewards; later
  rounds as `current`;
- `hedged_mean`: as `hedged`, and later rounds take the model's mean alone (no exploration).
Prints, per truth and design, the gap to the best averaged over the 12 (budget, K) cells, both
R and the hypernetworks.

Usage: python scripts/finals_arms.py --hypernets nb201_mnist1d_dev=runs/finals_dev macro_mnist1d_small_dev=runs/arms/base
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from hypernas import recalibrate
from hypernas.bench.budget import TRUTHS, hypernet_paths, merged_table, top_picks
from hypernas.bench.finals import KS
from hypernas.bench.ground_truth import arch_graph
from hypernas.data import load_dataset
from hypernas.graph import flops, param_count
from hypernas.score import Scorer
from hypernas.spaces import get_space

DESIGNS = ("current", "hedged", "hedged_mean")


def first_round(scores: np.ndarray, sizes: np.ndarray, k: int, hedged: bool) -> list[int]:
    by_score = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if not hedged:
        return by_score[:k]
    by_size = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    picks: list[int] = []
    for a, b in zip(by_score, by_size):
        for i in (a, b):
            if i not in picks and len(picks) < k:
                picks.append(i)
    return picks


def simulate(design: str, rows: list[dict], scores: np.ndarray, sizes: np.ndarray, labels: np.ndarray,
             truth: np.ndarray, k: int, rounds: int) -> float:
    X = recalibrate.rank_features(rows)
    chosen: list[int] = []
    for r, size in enumerate(recalibrate.round_sizes(k, rounds)):
        if r == 0:
            chosen += first_round(scores, sizes, size, design != "current")
            continue
        mean, std = recalibrate.predict(recalibrate.fit(X[chosen], labels[chosen]), X)
        chosen += recalibrate.next_round(mean, 0 * std if design == "hedged_mean" else std, set(chosen), size)
    return float(truth[chosen].max())


def evaluate(name: str, hypernet_dir: str, runs: int) -> dict[str, float]:
    spec = TRUTHS[name]
    table, data, space = merged_table(spec.tables), load_dataset(spec.dataset), get_space(spec.space)
    graphs = [arch_graph(space, a, data.in_channels, data.num_classes) for a in table.archs]
    truth, label = np.array(table.mean), np.array(table.by_seed[0])
    params = np.array([param_count(G, data.ndim) for G in graphs], dtype=float)
    fl = np.array([flops(G, data.input_size) for G in graphs], dtype=float)
    paths = hypernet_paths(name, spec, runs, hypernet_dir)  # refuses missing or unfinished ones
    runs_scores = [np.array([s.score for s in Scorer.from_checkpoint(p, data, samples=1).score(graphs)]) for p in paths]
    budgets = [np.arange(len(truth))] + [np.flatnonzero(params <= np.percentile(params, q, method="lower"))
                                         for q in (25, 50, 75)]
    rng = np.random.default_rng(0)
    gaps: dict[str, list[float]] = {d: [] for d in ("score", "size", *DESIGNS)}
    for within in budgets:
        best = truth[within].max()
        for k in KS:
            k = min(k, len(within))
            gaps["size"].append(best - top_picks(params[within], truth[within], k, rng)[1])
            for s in runs_scores:
                gaps["score"].append(best - top_picks(s[within], truth[within], k, rng)[1])
                rows = [{"score": float(s[i]), "params": params[i], "flops": fl[i]} for i in within]
                for design in DESIGNS:
                    for rounds in (2, 4):
                        gaps[design].append(best - simulate(design, rows, s[within], params[within], label[within],
                                                            truth[within], k, rounds))
    return {d: statistics.fmean(v) for d, v in gaps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hypernets", nargs="+", required=True, help="TRUTH=DIR for each development truth")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| truth | " + " | ".join(("score", "size", *DESIGNS)) + " |")
    print("|---|" + "---|" * (2 + len(DESIGNS)))
    for pair in args.hypernets:
        name, folder = pair.split("=", 1)
        gaps = evaluate(name, folder, args.runs)
        print(f"| {name} | " + " | ".join(f"{gaps[d]:.5f}" for d in ("score", "size", *DESIGNS)) + " |")


if __name__ == "__main__":
    main()
