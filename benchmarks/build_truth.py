"""`python -m benchmarks.build_truth`: train a truth table, resumably, one row per architecture and seed.

Random architectures of a space (drawn uniformly with a fixed seed, isomorphic duplicates
skipped, so every row is a distinct network) are trained normally (`hypernas.train`, the
reference protocol unless told) and tested. Each finished training is appended to the CSV at
once, so an interrupted run resumes where it stopped; `--shard K/N` spreads the jobs over N
processes, each with a file of its own. With `--test-samples N` (MNIST-1D tasks only), every
run is tested on N extra samples of the task's generator instead of its 1,000 or 3,000
(`benchmarks.testsets`): the training data stays exactly that of `load_dataset`.

Usage:
    python -m benchmarks.build_truth --cells 300 --out benchmarks/data/nb201_mnist1d.csv
    # a disjoint development table, for design decisions that must not see the reference table:
    python -m benchmarks.build_truth --cells 80 --draw-seed 1 --exclude benchmarks/data/nb201_mnist1d.csv \\
        --out benchmarks/data/nb201_mnist1d_dev.csv
    # sixteen seeds of the same cells, tested on 20,000 extra samples, over two processes:
    for k in 0 1; do python -m benchmarks.build_truth --cells 300 --seeds $(seq -s, 0 15) --test-samples 20000 \\
        --threads 1 --shard $k/2 --out runs/truth_s$k.csv & done
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass

from tqdm.auto import tqdm

from benchmarks.core.report import command
from benchmarks.core.tables import FIELDS, arch_graph, draw_archs
from benchmarks.testsets import extra_test_set
from hypernas.config import TrainConfig
from hypernas.data import DATASETS, MNIST1D_VARIANTS, load_dataset
from hypernas.errors import OptionError
from hypernas.graph import canonical_hash, flops, param_count
from hypernas.options import check, option
from hypernas.spaces import get_space
from hypernas.train import evaluate, train


@dataclass(frozen=True)
class Config:
    out: str | None = option(None, "the CSV to write (appended to, and resumed from, where it exists)")
    cells: int = option(300, "distinct architectures to draw", low=1)
    seeds: tuple[int, ...] = option((0, 1), "training seeds of each architecture")
    draw_seed: int = option(0, "the seed the architectures are drawn with", low=0)
    space: str = option("nb201", "a built-in space: nb201 (C=8, N=1) or macro (its defaults)")
    dataset: str = option("mnist1d", "the task", choices=DATASETS)
    exclude: str | None = option(None, "another table whose networks must not be drawn again (a disjoint dev set)")
    test_samples: int = option(0, "test on this many extra samples of the MNIST-1D generator (0: the test split)",
                               low=0)
    average_epochs: int = option(0, "average the weights over the last N epochs of the training", low=0)
    threads: int = option(1, "torch threads", low=1)
    shard: str = option("0/1", "K/N: train only every N-th job from the K-th, to spread a table over N processes")

    def __post_init__(self):
        check(self)
        if self.out is None:
            raise OptionError("--out is required: the CSV the table goes to")
        if self.test_samples and self.dataset != "mnist1d" and self.dataset not in MNIST1D_VARIANTS:
            raise OptionError(f"--test-samples needs an MNIST-1D task, whose generator makes them; not {self.dataset}")
        parse_shard(self.shard)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N): this process trains every N-th job from the K-th (0 <= K < N)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise OptionError(f"--shard takes K/N, like 0/4; got {text!r}") from None
    if not 0 <= k < n:
        raise OptionError(f"--shard K/N needs 0 <= K < N; got {text!r}")
    return k, n


def jobs(cells: list[str], seeds: tuple[int, ...], shard: tuple[int, int] = (0, 1)) -> list[tuple[str, int]]:
    """The (cell, seed) trainings of one shard. Sharding comes before resuming, so a shard's
    jobs do not depend on what its file already holds."""
    k, n = shard
    return [(a, s) for a in cells for s in seeds][k::n]


def read_rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def run(config: Config) -> dict:
    import torch

    torch.set_num_threads(config.threads)
    space, data = get_space(config.space), load_dataset(config.dataset)
    existing = read_rows(config.out)
    # The table stores no dataset name, but its networks' sizes tell: resuming it with another
    # dataset would mix two ground truths in one file.
    for r in existing[:10]:
        G = arch_graph(space, r["arch"], data.in_channels, data.num_classes)
        if int(r["params"]) != param_count(G, data.ndim):
            raise OptionError(f"{config.out} was made with another dataset: its networks are not {config.dataset}'s "
                              f"({r['params']} parameters in {r['arch']}, {param_count(G, data.ndim)} here)")
    done = {(r["arch"], int(r["seed"])) for r in existing}
    # hashed afresh: a stored hash goes stale if the hash convention changes
    exclude = {canonical_hash(arch_graph(space, r["arch"], 1, 10)) for r in read_rows(config.exclude)} \
        if config.exclude else set()
    cells = draw_archs(space, config.cells, config.draw_seed, exclude)
    todo = [job for job in jobs(cells, config.seeds, parse_shard(config.shard)) if job not in done]
    test = extra_test_set(data, config.test_samples) if config.test_samples else (data.x_test, data.y_test)
    protocol = TrainConfig(average_epochs=config.average_epochs)
    if os.path.dirname(config.out):
        os.makedirs(os.path.dirname(config.out), exist_ok=True)
    with open(config.out, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if not existing:
            writer.writeheader()
        for arch, seed in tqdm(todo, desc="truth", unit="run"):
            G = arch_graph(space, arch, data.in_channels, data.num_classes)
            r = train(G, data, protocol, seed=seed, progress=False)
            acc, loss = evaluate(r.model, *test)
            writer.writerow({"arch": arch, "hash": canonical_hash(G), "params": param_count(G, data.ndim),
                             "flops": flops(G, data.input_size), "seed": seed, "test_accuracy": f"{acc:.5f}",
                             "test_loss": f"{loss:.5f}", "seconds": f"{r.seconds:.2f}"})
            f.flush()
    return {"out": config.out, "trained": len(todo), "rows": len(existing) + len(todo), "cells": len(cells),
            "test": len(test[1])}


def markdown(result: dict) -> str:
    return (f"{result['out']}: {result['trained']} runs trained now, {result['rows']} rows in all "
            f"({result['cells']} architectures; tested on {result['test']:,} samples)")


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.build_truth", doc=__doc__)


if __name__ == "__main__":
    main()
