"""The shipped truth tables of the budget, finals and init benches, and one loader for them.

A truth is a table of trained accuracies (several CSVs of one set of architectures, seeds
merged), the space and dataset it was trained on, and the configuration of the hypernetworks
that score it. `load` builds everything the benches compare: the table's graphs, their
parameter counts and FLOPs, and each hypernetwork's scores.

Usage:
    chosen = resolve("nb201_mnist1d,macro_mnist1d_small", parser)   # [(name, Truth)]
    loaded = load(name, truth, runs=3, hypernet_dir="runs/budget")  # .acc, .params, .scores, ...
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, replace
from functools import cached_property

import networkx as nx
import numpy as np

from hypernas.bench.ground_truth import SPACE_OPTIONS, arch_graph
from hypernas.bench.table import Table, read_table
from hypernas.config import FitConfig, HyperConfig
from hypernas.data import Dataset, load_dataset
from hypernas.errors import CheckpointError
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import check_resumable, fit_hypernet, fit_record
from hypernas.graph import flops, param_count
from hypernas.options import build
from hypernas.score import Scorer
from hypernas.spaces import Space, get_space

DATA = os.path.join(os.path.dirname(__file__), "data")


@dataclass(frozen=True)
class Truth:
    tables: tuple[str, ...]  # CSVs of one set of architectures, seeds merged
    space: str
    dataset: str
    fit: FitConfig = field(default_factory=FitConfig)
    hypernets: str = ""  # the file prefix of its hypernetworks, where another truth's serve it (same data)
    development: bool = False  # for choosing the hypernetwork's configuration; never reported as a result


MACRO_FIT = FitConfig(steps=1000, meta_batch=8, hyper=HyperConfig(layer="transformer"))
TRUTHS = {
    "nb201_mnist1d": Truth(("nb201_mnist1d.csv", "nb201_mnist1d_seeds2-5.csv"), "nb201", "mnist1d",
                           FitConfig(steps=1500, meta_batch=8)),  # the README's configuration
    "nb201_digits": Truth(("nb201_digits.csv",), "nb201", "digits", FitConfig(steps=1500, meta_batch=8)),
    # the transformer layer: chosen for macro networks on the development table (docs/history.md)
    "macro_mnist1d_small": Truth(("macro_mnist1d_small.csv",), "macro", "mnist1d_small", MACRO_FIT),
    "macro_mnist1d_small_dev": Truth(("macro_mnist1d_small_dev.csv",), "macro", "mnist1d_small", MACRO_FIT,
                                     "macro_mnist1d_small", development=True),
    "nb201_mnist1d_dev": Truth(("nb201_mnist1d_dev.csv", "nb201_mnist1d_dev_seeds2-5.csv"), "nb201", "mnist1d",
                               FitConfig(steps=1500, meta_batch=8), "nb201_mnist1d", development=True),
}
REFERENCE = tuple(name for name, t in TRUTHS.items() if not t.development)  # what a bench runs unless told


def resolve(names: str, parser: argparse.ArgumentParser) -> list[tuple[str, Truth]]:
    """The truths a comma list names, or the parser's one-line error for an unknown name."""
    chosen = [n for n in names.split(",") if n]
    unknown = [n for n in chosen if n not in TRUTHS]
    if unknown or not chosen:
        parser.error(f"--truths takes a comma list of {', '.join(TRUTHS)} (got {', '.join(unknown) or 'none'})")
    return [(n, TRUTHS[n]) for n in chosen]


def with_fit(truth: Truth, options: dict) -> Truth:
    """The truth with its hypernetworks' training options overridden by `options` (flat keys)."""
    return replace(truth, fit=build(FitConfig, {**truth.fit.record(), **options})) if options else truth


def merged_table(paths: tuple[str, ...]) -> Table:
    """The architectures of the first table with the seeds of all of them."""
    tables = [read_table(os.path.join(DATA, p)) for p in paths]
    archs = [a for a in tables[0].archs if all(a in t.archs for t in tables[1:])]
    by_seed = {}
    for t in tables:
        where = {a: i for i, a in enumerate(t.archs)}
        by_seed.update({s: [accs[where[a]] for a in archs] for s, accs in t.by_seed.items()})
    return Table(archs, by_seed)


def hypernet_paths(name: str, truth: Truth, runs: int, hypernet_dir: str, data: Dataset | None = None,
                   space: Space | None = None) -> list[str]:
    """The files of a truth's `runs` hypernetworks (`DIR/PREFIX_sSEED.pt`). Given `data` and
    `space`, each is trained first where missing or short (resumable), and one made with other
    training options is refused, so that a folder never passes off one configuration as another."""
    paths = [os.path.join(hypernet_dir, f"{truth.hypernets or name}_s{r}.pt") for r in range(runs)]
    for r, path in enumerate(paths):
        if data is None or space is None:
            if not os.path.exists(path) or (step := load_checkpoint(path)["step"]) < truth.fit.steps:
                state = "missing" if not os.path.exists(path) else f"unfinished (step {step} of {truth.fit.steps})"
                raise CheckpointError(f"hypernetwork {path} is {state}: `hypernas bench budget` trains it")
            continue
        fit, options = replace(truth.fit, seed=r), SPACE_OPTIONS.get(truth.space, {})
        if os.path.exists(path):
            ckpt = load_checkpoint(path)
            check_resumable(ckpt, fit_record(space, space.resolve_options(options), data, fit), path)
            if ckpt["step"] >= fit.steps:
                continue
        fit_hypernet(space, options, data, fit, out=path, resume=True)
    return paths


@dataclass
class Loaded:
    """One truth's table with what the benches compare it by."""

    name: str
    truth: Truth
    table: Table
    data: Dataset
    space: Space
    graphs: list[nx.DiGraph]
    hypernets: list[str]  # the checkpoint files, one per run
    scores: list[np.ndarray] = field(default_factory=list)  # each hypernetwork's scores, in table order

    @property
    def acc(self) -> np.ndarray:
        """The truth: each architecture's mean accuracy over every seed the table ships."""
        return np.array(self.table.mean)

    def seed(self, seed: int) -> np.ndarray:
        """One seed's accuracies: what a single final training would report."""
        return np.array(self.table.by_seed[seed])

    @cached_property
    def params(self) -> np.ndarray:
        return np.array([param_count(G, self.data.ndim) for G in self.graphs], dtype=float)

    @cached_property
    def flops(self) -> np.ndarray:
        return np.array([flops(G, self.data.input_size) for G in self.graphs], dtype=float)


def load(name: str, truth: Truth, runs: int, hypernet_dir: str, *, train: bool = False, score: bool = True,
         limit: int | None = None) -> Loaded:
    """A truth's table (its first `limit` architectures), graphs and `runs` hypernetworks'
    scores. With `train`, missing hypernetworks are trained first; without, they are refused."""
    table = merged_table(truth.tables).head(limit)
    data, space = load_dataset(truth.dataset), get_space(truth.space)
    graphs = [arch_graph(space, a, data.in_channels, data.num_classes) for a in table.archs]
    paths = hypernet_paths(name, truth, runs, hypernet_dir, *((data, space) if train else ()))
    loaded = Loaded(name, truth, table, data, space, graphs, paths)
    if score:
        scorers = [Scorer.from_checkpoint(p, data, samples=1) for p in paths]  # the central prediction
        loaded.scores = [np.array([s.score for s in scorer.score(graphs, progress=True)]) for scorer in scorers]
    return loaded
