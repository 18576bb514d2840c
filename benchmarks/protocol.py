"""Check the reference training protocol on three landmark NB201 cells (MNIST-1D, C=8, N=1).

A strong cell must reach >= 0.95, the all-average-pool cell must be clearly worse, and a
cell whose output is cut off must stay near chance (0.1).

Usage:
    python -m benchmarks.protocol [--seeds 0,1] [--threads 2]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmarks.core.report import command, table
from hypernas.data import load_dataset
from hypernas.options import check, option
from hypernas.train import train
from search_spaces import nb201

CELLS = {
    "strong": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "all avg_pool": "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "output cut off": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|none~0|none~1|none~2|",
}


@dataclass(frozen=True)
class Config:
    seeds: tuple[int, ...] = option((0,), "training seeds of each cell")
    threads: int = option(torch.get_num_threads(), "torch threads", low=1)

    def __post_init__(self):
        check(self)


def run(config: Config) -> list[dict]:
    torch.set_num_threads(config.threads)
    data = load_dataset("mnist1d")
    return [{"label": label, "arch": arch, "seed": seed, **vars_of(train(
        nb201.from_string(arch, 1, 10, channels=8, cells=1), data, seed=seed, progress=False))}
        for label, arch in CELLS.items() for seed in config.seeds]


def vars_of(result) -> dict:
    return {"test_accuracy": result.test_accuracy, "seconds": result.seconds}


def markdown(rows: list[dict]) -> str:
    return "\n".join(table(["cell", "seed", "test accuracy", "seconds"],
                           [[f"{r['label']} `{r['arch']}`".replace("|", "\\|"), r["seed"], f"{r['test_accuracy']:.3f}",
                             f"{r['seconds']:.1f}"] for r in rows]))  # escaped: Markdown table columns stay intact


def main(argv: list[str] | None = None) -> list[dict]:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.protocol", doc=__doc__)


if __name__ == "__main__":
    main()
