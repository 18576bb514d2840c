"""The truth tables' rows: how a row names its architecture, and how a table is read.

A table is a CSV with one row per architecture and seed (`arch`, `hash`, `params`, `flops`,
`seed`, `test_accuracy`, `test_loss`, `seconds`, and `latency_ms` where measured). A row names
its architecture by the space's string form, or for a space without one (macro) by its choices
as JSON. Architectures are drawn uniformly with a fixed seed, isomorphic duplicates skipped.

Usage:
    table = read_table(table_path("nb201_mnist1d.csv"))
    table.mean, table.by_seed[0], table.archs
"""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass

import networkx as nx
import optuna

from hypernas.graph import canonical_hash
from hypernas.spaces import RandomTrial, Space

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")
FIELDS = ["arch", "hash", "params", "flops", "seed", "test_accuracy", "test_loss", "seconds"]
SPACE_OPTIONS = {"nb201": {"channels": 8, "cells": 1}}  # each table's space options; others use the space's defaults


def table_path(name: str) -> str:
    """A shipped table's path from its file name."""
    return os.path.join(DATA, name)


@dataclass
class Table:
    archs: list[str]
    by_seed: dict[int, list[float]]  # seed -> accuracy per arch, in `archs` order

    @property
    def mean(self) -> list[float]:
        return [statistics.fmean(accs) for accs in zip(*self.by_seed.values())]

    def head(self, n: int | None) -> "Table":
        """The first `n` architectures (all of them for None)."""
        return Table(self.archs[:n], {s: accs[:n] for s, accs in self.by_seed.items()})

    def seeds(self, seeds) -> "Table":
        """The same architectures with only the given seeds."""
        return Table(self.archs, {s: self.by_seed[s] for s in seeds})


def read_table(path: str) -> Table:
    """The architectures that have every seed in the table, with their accuracies."""
    rows: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["arch"]][int(r["seed"])] = float(r["test_accuracy"])
    seeds = sorted({s for accs in rows.values() for s in accs})
    archs = [a for a, accs in rows.items() if all(s in accs for s in seeds)]
    return Table(archs, {s: [rows[a][s] for a in archs] for s in seeds})


def merged_table(paths: tuple[str, ...]) -> Table:
    """The architectures of the first table with the seeds of all of them (file names in `DATA`)."""
    tables = [read_table(table_path(p)) for p in paths]
    archs = [a for a in tables[0].archs if all(a in t.archs for t in tables[1:])]
    by_seed = {}
    for t in tables:
        where = {a: i for i, a in enumerate(t.archs)}
        by_seed.update({s: [accs[where[a]] for a in archs] for s, accs in t.by_seed.items()})
    return Table(archs, dict(sorted(by_seed.items())))


def arch_text(space: Space, G: nx.DiGraph, choices: dict) -> str:
    """A table row's name of an architecture: the space's string form, else its choices as JSON."""
    return space.describe(G) if space.format else json.dumps(choices, sort_keys=True)


def arch_graph(space: Space, text: str, in_channels: int, num_classes: int) -> nx.DiGraph:
    """The network a table row names (`arch_text`), built for the data's channels and classes."""
    options = SPACE_OPTIONS.get(space.name, {})
    if space.format:
        return space.from_text(text, in_channels, num_classes, **options)
    return space.build(optuna.trial.FixedTrial(json.loads(text)), in_channels, num_classes, **options)


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
