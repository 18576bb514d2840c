"""Dynamic architectures: score many `macro` networks of different depths and widths.

Reports how varied the scored networks are (node counts, parameter counts) and how their
validation accuracy with predicted weights is spread (chance is 1 / classes).

Usage:
    hypernas train-hypernet --space macro --dataset mnist1d --steps 1500 --out runs/macro/hypernet.pt
    python -m hypernas.bench.dynamic --hypernet runs/macro/hypernet.pt --archs 200
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from hypernas.data import load_dataset_like
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.score import Scorer
from hypernas.spaces import recorded_space


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hypernet", required=True)
    ap.add_argument("--archs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.hypernet)
    data = load_dataset_like(ckpt["data"])
    graphs = recorded_space(ckpt["space"], None, f"checkpoint {args.hypernet!r}").sample_distinct(args.archs, args.seed, data.in_channels, data.num_classes,
                                                      **ckpt["space_options"])
    scores = Scorer.from_checkpoint(args.hypernet, data, samples=2).score(graphs)
    acc = [s.accuracy for s in scores]
    print(json.dumps({
        "space": ckpt["space"], "dataset": data.name, "archs": len(graphs), "hypernet_steps": ckpt["step"],
        "nodes_min_max": [min(len(G) for G in graphs), max(len(G) for G in graphs)],
        "params_min_max": [min(s.params for s in scores), max(s.params for s in scores)],
        "distinct_scores": len(set(acc)), "accuracy_mean": statistics.fmean(acc), "accuracy_std": statistics.stdev(acc),
        "accuracy_min": min(acc), "accuracy_max": max(acc), "chance": 1 / data.num_classes,
        "mean_draw_std": statistics.fmean(s.accuracy_std for s in scores),
    }, indent=1))


if __name__ == "__main__":
    main()
