"""Do the search's several score draws rank as the benches' central prediction does?

On each given truth (development tables only), for 1, 2 and 8 draws (`--samples`), the
within-budget Kendall tau and the best-of-3 gap averaged over `python -m benchmarks.budget`'s six
budgets, mean over the truth's three hypernetworks. A check that chooses nothing.

Usage: python -m benchmarks.experiments.score_draws nb201_mnist1d_dev macro_mnist1d_small_dev --hypernets runs/budget
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from benchmarks.budget import PERCENTILES
from benchmarks.core.picks import top_picks
from benchmarks.core.stats import kendall_tau as tau
from benchmarks.core.truths import TRUTHS, load
from hypernas.score import Scorer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("truths", nargs="+", choices=[n for n, t in TRUTHS.items() if t.development])
    parser.add_argument("--hypernets", default="runs/budget")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| truth | draws | within-budget tau (per hypernetwork) | best-of-3 gap |\n|---|---|---|---|")
    for name in args.truths:
        loaded = load(name, TRUTHS[name], args.runs, args.hypernets, score=False)
        acc = loaded.acc
        budgets = [np.flatnonzero(size <= np.percentile(size, q, method="lower"))
                   for size in (loaded.params, loaded.flops) for q in PERCENTILES]
        for samples in (1, 2, 8):
            taus, gaps = [], []
            for path in loaded.hypernets:
                scores = [s.score for s in Scorer.from_checkpoint(path, loaded.data, samples=samples).score(loaded.graphs)]
                s = np.array(scores)
                taus.append(statistics.fmean(tau(s[w], acc[w]) for w in budgets))
                gaps.append(statistics.fmean(acc[w].max() - top_picks(s[w], acc[w], 3, np.random.default_rng(0))[1]
                                             for w in budgets))
            print(f"| {name} | {samples} | {statistics.fmean(taus):.3f} ({', '.join(f'{t:.3f}' for t in taus)}) | "
                  f"{statistics.fmean(gaps):.4f} |")


if __name__ == "__main__":
    main()
