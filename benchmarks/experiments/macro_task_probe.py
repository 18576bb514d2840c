"""Which MNIST-1D task tells macro networks apart? A probe of the task alone, no scorer.

Trains the same 12 random macro networks (space defaults, draw seed 100, disjoint from nothing
yet: a probe, not a table) with seeds 0 and 1 under the reference protocol (6 epochs), on
each candidate variant of MNIST-1D, made with `mnist1d`'s own arguments. Prints per variant:
mean and best test accuracy, the expected best of 3 random picks, the spread (best - mean),
and the seed-to-seed Kendall tau.

The criterion, fixed before the run: among the variants whose seed-to-seed tau is at least
0.3 and whose mean accuracy is at most 0.95 (not saturated), the one with the largest spread;
the reference task if none qualifies.

Usage: python -m benchmarks.experiments.macro_task_probe
"""

from __future__ import annotations

import itertools
import statistics
import sys

import numpy as np
import torch
from scipy import stats

from hypernas.data import MNIST1D_VARIANTS, load_dataset
from hypernas.spaces import get_space
from hypernas.train import train


def main() -> None:
    torch.set_num_threads(1)
    space = get_space("macro")
    variants = sys.argv[1:] or ["mnist1d", *MNIST1D_VARIANTS]
    for name in variants:
        data = load_dataset(name)
        graphs = space.sample_distinct(12, 100, data.in_channels, data.num_classes)
        acc = {s: [train(G, data, seed=s, progress=False).test_accuracy for G in graphs] for s in (0, 1)}
        mean = [statistics.fmean(p) for p in zip(acc[0], acc[1])]
        best3 = statistics.fmean(max(c) for c in itertools.combinations(mean, 3))
        tau = stats.kendalltau(acc[0], acc[1]).statistic
        print(f"{name}: train {len(data.x_train) + len(data.x_val)}, test {len(data.x_test)}; mean {np.mean(mean):.4f}, "
              f"best {max(mean):.4f}, expected best of 3 {best3:.4f}, spread {max(mean) - np.mean(mean):.4f}, "
              f"seed tau {tau:.3f}", flush=True)


if __name__ == "__main__":
    main()
