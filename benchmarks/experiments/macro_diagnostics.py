"""What is left between the macro hypernetwork and the truth? Diagnostics that choose nothing.

On the development macro table, for the hypernetworks of one arm (`DIR/macro_mnist1d_small_sS.pt`):
- the tau over the networks whose widest layer is at most `--wide` channels, and over those
  wider, beside the parameter count's tau on the same networks (do the channel bases' rarely
  trained upper rows rank worse?);
- the tau between the runs' scores, the tau of each run against the truth, and of their mean
  rank (an ensemble of the runs): a bias that every run shares, or run-to-run variance?
  Both over the whole table and within the six budgets of `python -m benchmarks.budget`.

Usage: python -m benchmarks.experiments.macro_diagnostics runs/arms/base
"""

from __future__ import annotations

import argparse
import itertools
import statistics

import numpy as np
import torch
from scipy import stats

from benchmarks.budget import PERCENTILES
from benchmarks.core.stats import kendall_tau as tau
from benchmarks.core.truths import TRUTHS, load
from hypernas.graph import validate


def within_budgets(scores: np.ndarray, acc: np.ndarray, sizes: dict[str, np.ndarray]) -> float:
    """The within-budget tau averaged over the bench's six budgets."""
    taus = []
    for size in sizes.values():
        for q in PERCENTILES:
            inside = np.flatnonzero(size <= np.percentile(size, q, method="lower"))
            taus.append(tau(scores[inside], acc[inside]))
    return statistics.fmean(taus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hypernets", help="folder of the arm's hypernetworks")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wide", type=int, default=144, help="channels that split narrow from wide networks")
    args = parser.parse_args()
    torch.set_num_threads(2)
    name = "macro_mnist1d_small_dev"
    loaded = load(name, TRUTHS[name], args.runs, args.hypernets)  # refuses missing or unfinished hypernetworks
    acc, runs, params = loaded.acc, loaded.scores, loaded.params
    sizes = {"params": params, "flops": loaded.flops}
    widest = np.array([max(n.shape.channels for n in validate(G).nodes) for G in loaded.graphs])

    for name, part in (("narrow", widest <= args.wide), ("wide", widest > args.wide)):
        taus = [tau(r[part], acc[part]) for r in runs]
        print(f"{name} (widest layer {'<=' if name == 'narrow' else '>'} {args.wide}): {part.sum()} networks, "
              f"hypernet tau {statistics.fmean(taus):.3f} ({', '.join(f'{t:.3f}' for t in taus)}), "
              f"params tau {tau(params[part], acc[part]):.3f}")
    between = [tau(a, b) for a, b in itertools.combinations(runs, 2)]
    print(f"tau between runs: {', '.join(f'{t:.3f}' for t in between)} (mean {statistics.fmean(between):.3f})")
    ensemble = np.mean([stats.rankdata(r) for r in runs], axis=0)
    for name, scores in [*((f"run {i}", r) for i, r in enumerate(runs)), ("mean rank of the runs", ensemble)]:
        print(f"{name}: tau over the table {tau(scores, acc):.3f}, within-budget tau {within_budgets(scores, acc, sizes):.3f}")
    seeds = [np.array(s) for s in loaded.table.by_seed.values()]
    print(f"seed to seed: tau over the table {tau(seeds[0], seeds[1]):.3f}; each seed against the other as a "
          f"scorer, within-budget tau {within_budgets(seeds[0], seeds[1], sizes):.3f}")


if __name__ == "__main__":
    main()
