"""Check the reference training protocol on three landmark NB201 cells (MNIST-1D, C=8, N=1).

A strong cell must reach >= 0.95, the all-average-pool cell must be clearly worse, and a
cell whose output is cut off must stay near chance (0.1).

Usage:
    python -m hypernas.bench.protocol [--seeds 0 1] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch

from hypernas.data import load_dataset
from hypernas.train import train
from search_spaces import nb201

CELLS = {
    "strong": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "all avg_pool": "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "output cut off": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist1d")
    print("| cell | seed | test accuracy | seconds |\n|---|---|---|---|")
    for label, arch in CELLS.items():
        for seed in args.seeds:
            r = train(nb201.from_string(arch, 1, 10, channels=8, cells=1), data, seed=seed, progress=False)
            escaped = arch.replace("|", "\\|")  # keep Markdown table columns intact
            print(f"| {label} `{escaped}` | {seed} | {r.test_accuracy:.3f} | {r.seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
