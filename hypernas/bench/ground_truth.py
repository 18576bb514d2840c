"""Make a ground-truth table: random architectures of a space trained normally with 2 seeds.

Reference protocol (BENCHMARKS.md): MNIST-1D, NB201 at skeleton C=8 and N=1, 6 epochs, test
accuracy. Architectures are drawn uniformly with a fixed seed; isomorphic duplicates
(canonical hash) are skipped so every row is a distinct network. A row names its architecture
by the space's string form, or for a space without one (macro) by its choices as JSON. Each
finished training is appended to the CSV at once, so an interrupted run resumes where it stopped.

Usage:
    python -m hypernas.bench.ground_truth --cells 300 --out hypernas/bench/data/nb201_mnist1d.csv
    # a disjoint development table, for design decisions that must not see the reference table:
    python -m hypernas.bench.ground_truth --cells 80 --draw-seed 1 \
        --exclude hypernas/bench/data/nb201_mnist1d.csv --out hypernas/bench/data/nb201_mnist1d_dev.csv
    # the same cells on another dataset, in a table of its own:
    python -m hypernas.bench.ground_truth --dataset digits --cells 100 --out hypernas/bench/data/nb201_digits.csv
    # more seeds of the same cells on many cores: one process per shard, each with its own file
    for k in 0 1 2 3; do python -m hypernas.bench.ground_truth --seeds 2 3 --threads 1 --shard $k/4 --out s$k.csv & done
    # macro networks on the harder MNIST-1D (docs/history.md says why that task)
    python -m hypernas.bench.ground_truth --space macro --dataset mnist1d_small --cells 200 \
        --out hypernas/bench/data/macro_mnist1d_small.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random

import networkx as nx
import optuna
import torch
from tqdm.auto import tqdm

from hypernas.data import load_dataset
from hypernas.graph import canonical_hash, flops, param_count
from hypernas.spaces import RandomTrial, Space, get_space
from hypernas.train import train
from search_spaces import nb201

DEFAULT_TABLE = os.path.join(os.path.dirname(__file__), "data", "nb201_mnist1d.csv")
FIELDS = ["arch", "hash", "params", "flops", "seed", "test_accuracy", "test_loss", "seconds"]
PROTOCOL = {"channels": 8, "cells": 1}
SPACE_OPTIONS = {"nb201": PROTOCOL}  # each table's space options; others use the space's defaults


def draw_cells(n: int, seed: int = 0, exclude: set[str] = frozenset()) -> list[str]:
    """`n` NB201 strings of distinct networks, drawn uniformly at random, none hashing into `exclude`."""
    return draw_archs(nb201.SPACE, n, seed, exclude)


def draw_archs(space: Space, n: int, seed: int = 0, exclude: set[str] = frozenset(), in_channels: int = 1,
               num_classes: int = 10) -> list[str]:
    """`n` distinct architectures drawn uniformly, none hashing into `exclude`, as table rows
    name them (`arch_text`). Drawn as `Space.sample_distinct` draws, one RNG in turn."""
    options = SPACE_OPTIONS.get(space.name, {})
    rng, seen, out = random.Random(seed), set(exclude), []
    while len(out) < n:
        trial = RandomTrial(rng)
        G, info = space.build_info(trial, in_channels, num_classes, **options)
        key = canonical_hash(info)
        if key not in seen:
            seen.add(key)
            out.append(arch_text(space, G, trial.params))
    return out


def arch_text(space: Space, G: nx.DiGraph, choices: dict) -> str:
    """A table row's name of an architecture: the space's string form, else its choices as JSON."""
    return space.describe(G) if space.format else json.dumps(choices, sort_keys=True)


def arch_graph(space: Space, text: str, in_channels: int, num_classes: int) -> nx.DiGraph:
    """The network a table row names (`arch_text`), built for the data's channels and classes."""
    options = SPACE_OPTIONS.get(space.name, {})
    if space.format:
        return space.from_text(text, in_channels, num_classes, **options)
    return space.build(optuna.trial.FixedTrial(json.loads(text)), in_channels, num_classes, **options)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N): this process trains every N-th job from the K-th (0 <= K < N)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes K/N, like 0/4; got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard K/N needs 0 <= K < N; got {text!r}")
    return k, n


def jobs(cells: list[str], seeds: list[int], shard: tuple[int, int] = (0, 1)) -> list[tuple[str, int]]:
    """The (cell, seed) trainings of one shard. Sharding comes before resuming, so a shard's
    jobs do not depend on what its file already holds."""
    k, n = shard
    return [(a, s) for a in cells for s in seeds][k::n]


def add_latency(path: str, space: Space, data) -> None:
    """Rewrite a table with a `latency_ms` column: each network's batch-1 latency on this CPU,
    measured once per network (all its seeds' rows share it); rows that have one keep it."""
    from hypernas.budget import measure_latency
    from hypernas.files import save_text
    from hypernas.graph import validate

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    known = {r["hash"]: r["latency_ms"] for r in rows if r.get("latency_ms")}
    for r in tqdm(rows, desc="latency", unit="row"):
        if r["hash"] not in known:
            info = validate(arch_graph(space, r["arch"], data.in_channels, data.num_classes))
            known[r["hash"]] = f"{measure_latency(info, data.ndim, data.input_size):.4f}"
        r["latency_ms"] = known[r["hash"]]
    out = io.StringIO()
    writer = csv.DictWriter(out, [*FIELDS, "latency_ms"])
    writer.writeheader()
    writer.writerows(rows)
    save_text(out.getvalue(), path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cells", type=int, default=300)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--draw-seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default=DEFAULT_TABLE)
    ap.add_argument("--dataset", default="mnist1d", help="the reference is mnist1d; another makes a table of its own")
    ap.add_argument("--space", default="nb201", help="a built-in space: nb201 (C=8, N=1) or macro (its defaults)")
    ap.add_argument("--exclude", help="another table whose networks must not be drawn again (a disjoint dev set)")
    ap.add_argument("--latency", action="store_true",
                    help="instead of training, add each network's latency (ms, batch 1, hypernas.budget) to --out")
    ap.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="K/N",
                    help="train only every N-th job from the K-th, to spread a table over N processes")
    args = ap.parse_args(argv)
    if (args.dataset, args.space) != ("mnist1d", "nb201") and os.path.abspath(args.out) == os.path.abspath(DEFAULT_TABLE):
        ap.error(f"--dataset {args.dataset} --space {args.space} needs an --out of its own: the default is the "
                 "NB201 MNIST-1D reference table")
    torch.set_num_threads(args.threads)
    space = get_space(args.space)
    data = load_dataset(args.dataset)
    if args.latency:
        add_latency(args.out, space, data)
        return
    done = set()
    if os.path.exists(args.out):
        with open(args.out, newline="") as f:
            existing = list(csv.DictReader(f))
        done = {(r["arch"], int(r["seed"])) for r in existing}
        # The table stores no dataset name, but its networks' sizes tell: resuming it with another
        # dataset would mix two ground truths in one file.
        for r in existing[:10]:
            G = arch_graph(space, r["arch"], data.in_channels, data.num_classes)
            if int(r["params"]) != param_count(G, data.ndim):
                ap.error(f"{args.out} was made with another dataset: its networks are not {args.dataset}'s "
                         f"({r['params']} parameters in {r['arch']}, {param_count(G, data.ndim)} here)")
    exclude = set()
    if args.exclude:  # hashed afresh: a stored hash goes stale if the hash convention changes
        with open(args.exclude, newline="") as f:
            exclude = {canonical_hash(arch_graph(space, r["arch"], 1, 10)) for r in csv.DictReader(f)}
    cells = draw_archs(space, args.cells, args.draw_seed, exclude)
    todo = [job for job in jobs(cells, args.seeds, args.shard) if job not in done]
    new_file = not os.path.exists(args.out)
    with open(args.out, "a", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        if new_file:
            writer.writeheader()
        for arch, seed in tqdm(todo, desc="ground truth", unit="run"):
            G = arch_graph(space, arch, data.in_channels, data.num_classes)
            r = train(G, data, seed=seed, progress=False)
            writer.writerow({"arch": arch, "hash": canonical_hash(G), "params": param_count(G, data.ndim),
                             "flops": flops(G, data.input_size), "seed": seed,
                             "test_accuracy": f"{r.test_accuracy:.4f}", "test_loss": f"{r.test_loss:.4f}",
                             "seconds": f"{r.seconds:.2f}"})
            f.flush()


if __name__ == "__main__":
    main()
