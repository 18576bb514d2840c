"""Dynamic architectures: score many `macro` networks of different depths and widths.

Reports how varied the scored networks are (node counts, parameter counts) and how their
validation accuracy with predicted weights is spread (chance is 1 / classes).

Usage:
    hypernas train-hypernet --space macro --dataset mnist1d --steps 1500 --out runs/macro/hypernet.pt
    python -m benchmarks.dynamic --hypernet runs/macro/hypernet.pt --archs 200
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

import torch

from benchmarks.core.report import command
from hypernas.data import load_dataset_like
from hypernas.errors import OptionError
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.options import check, option
from hypernas.score import Scorer
from hypernas.spaces import recorded_space


@dataclass(frozen=True)
class Config:
    hypernet: str | None = option(None, "a macro hypernetwork checkpoint (required)")
    archs: int = option(200, "distinct networks scored", low=2)
    seed: int = option(1, "the seed they are drawn with", low=0)
    threads: int = option(torch.get_num_threads(), "torch threads", low=1)

    def __post_init__(self):
        check(self)
        if not self.hypernet:
            raise OptionError("--hypernet is required")


def run(config: Config) -> dict:
    torch.set_num_threads(config.threads)
    ckpt = load_checkpoint(config.hypernet)
    data = load_dataset_like(ckpt["data"])
    space = recorded_space(ckpt["space"], None, f"checkpoint {config.hypernet!r}")
    graphs = space.sample_distinct(config.archs, config.seed, data.in_channels, data.num_classes, **ckpt["space_options"])
    scores = Scorer.from_checkpoint(config.hypernet, data, samples=2).score(graphs)
    acc = [s.accuracy for s in scores]
    return {
        "space": ckpt["space"], "dataset": data.name, "archs": len(graphs), "hypernet_steps": ckpt["step"],
        "nodes_min_max": [min(len(G) for G in graphs), max(len(G) for G in graphs)],
        "params_min_max": [min(s.params for s in scores), max(s.params for s in scores)],
        "distinct_scores": len(set(acc)), "accuracy_mean": statistics.fmean(acc), "accuracy_std": statistics.stdev(acc),
        "accuracy_min": min(acc), "accuracy_max": max(acc), "chance": 1 / data.num_classes,
        "mean_draw_std": statistics.fmean(s.accuracy_std for s in scores),
    }


def markdown(result: dict) -> str:
    return json.dumps(result, indent=1)


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.dynamic", doc=__doc__)


if __name__ == "__main__":
    main()
