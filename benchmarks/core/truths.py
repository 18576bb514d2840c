"""The shipped truths and one loader for them: what every bench that judges a scorer reads.

A truth is a table of trained accuracies (several CSVs of one set of architectures, seeds
merged), the space and dataset it was trained on, and the configuration of the hypernetworks
that score it. `load` builds everything the benches compare: the table's graphs, their
parameter counts and FLOPs, and each hypernetwork's scores.

Where a table has three seeds or more, seed 0 is held out of the truth: it is the label one
final training gives (`Loaded.label`) and the scorer "one training run", both judged against
the mean of the other seeds (`Loaded.acc`), so that neither is scored against itself. A table
of two seeds keeps both in its truth and has no such scorer.

Usage:
    chosen = resolve("nb201_mnist1d,macro_mnist1d_small", parser)   # [(name, Truth)]
    loaded = load(name, truth, runs=3, hypernet_dir="runs/budget")  # .acc, .params, .scores, ...
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cached_property

import networkx as nx
import numpy as np

from benchmarks.core.stats import noise_ceiling, seed_to_seed_tau, truth_noise
from benchmarks.core.tables import SPACE_OPTIONS, Table, arch_graph, merged_table
from hypernas.config import FitConfig, HyperConfig
from hypernas.data import Dataset, load_dataset
from hypernas.errors import CheckpointError, OptionError
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import check_resumable, fit_hypernet, fit_record
from hypernas.graph import flops, param_count
from hypernas.options import build, check, option
from hypernas.score import Scorer
from hypernas.spaces import Space, get_space

LABEL_SEED = 0  # the run that plays one final training's label and the scorer "one training run"


@dataclass(frozen=True)
class Truth:
    tables: tuple[str, ...]  # CSVs of one set of architectures, seeds merged
    space: str
    dataset: str
    fit: FitConfig = field(default_factory=FitConfig)
    hypernets: str = ""  # the file prefix of its hypernetworks, where another truth's serve it (same data)
    development: bool = False  # for choosing the hypernetwork's configuration; never reported as a result
    secondary: bool = False  # reported, but too small a test split to decide on alone
    test: str = "its test split"  # what the table's accuracies were measured on


MACRO_FIT = FitConfig(steps=1000, meta_batch=8, hyper=HyperConfig(layer="transformer"))
TRUTHS = {
    "nb201_mnist1d": Truth(("nb201_mnist1d.csv", "nb201_mnist1d_seeds2-5.csv"), "nb201", "mnist1d",
                           FitConfig(steps=1500, meta_batch=8), test="1,000 test samples"),  # the README's configuration
    # the first 143 reference cells again, 24 seeds each tested on 20,000 extra samples of the generator (docs/history.md);
    # built in cell order by two shards (even and odd seeds), so the cells both hold whole are the table
    "nb201_mnist1d_20k": Truth(("nb201_mnist1d_20k_even.csv", "nb201_mnist1d_20k_odd.csv"), "nb201", "mnist1d",
                               FitConfig(steps=1500, meta_batch=8), "nb201_mnist1d", test="20,000 extra test samples"),
    "nb201_digits": Truth(("nb201_digits.csv",), "nb201", "digits", FitConfig(steps=1500, meta_batch=8),
                          secondary=True, test="359 test samples"),
    # the transformer layer: chosen for macro networks on the development table (docs/history.md)
    "macro_mnist1d_small": Truth(("macro_mnist1d_small.csv",), "macro", "mnist1d_small", MACRO_FIT,
                                 test="3,000 test samples"),
    # the first reference macro networks again, on the reference task (twice `mnist1d_small`'s training data), 16
    # seeds each tested on 20,000 extra samples (docs/history.md); built like nb201_mnist1d_20k, whole cells only
    "macro_mnist1d_20k": Truth(("macro_mnist1d_20k_even.csv", "macro_mnist1d_20k_odd.csv"), "macro", "mnist1d",
                               MACRO_FIT, test="20,000 extra test samples"),
    "macro_mnist1d_small_dev": Truth(("macro_mnist1d_small_dev.csv",), "macro", "mnist1d_small", MACRO_FIT,
                                     "macro_mnist1d_small", development=True, test="3,000 test samples"),
    "nb201_mnist1d_dev": Truth(("nb201_mnist1d_dev.csv", "nb201_mnist1d_dev_seeds2-5.csv"), "nb201", "mnist1d",
                               FitConfig(steps=1500, meta_batch=8), "nb201_mnist1d", development=True,
                               test="1,000 test samples"),
}
REFERENCE = tuple(name for name, t in TRUTHS.items() if not t.development)  # what a bench runs unless told


@dataclass(frozen=True)
class Judged:
    """What a bench that judges scorers reads: which truths, and which of their hypernetworks."""

    truths: tuple[str, ...] = option(REFERENCE, "comma list of truths: " + ", ".join(TRUTHS))
    trainings: int = option(3, "hypernetwork trainings per truth (seeds 0..TRAININGS-1)", low=1)
    hypernets: str = option(os.path.join("runs", "budget"), "folder of the hypernetworks (TRUTH_sSEED.pt)")
    limit: int | None = option(None, "the first N architectures of each table only (a quick check)", low=2)
    threads: int = option(1, "torch threads", low=1)
    custom: tuple[tuple[str, Truth], ...] = ()  # truths beside the shipped ones, by name (tests, experiments)

    def __post_init__(self):
        check(self)
        known = {**TRUTHS, **dict(self.custom)}
        unknown = [n for n in self.truths if n not in known]
        if unknown:
            raise OptionError(f"truths must be among {', '.join(known)}; got {', '.join(unknown)}")

    def chosen(self) -> list[tuple[str, Truth]]:
        known = {**TRUTHS, **dict(self.custom)}
        return [(n, known[n]) for n in self.truths]


def with_fit(truth: Truth, options: dict) -> Truth:
    """The truth with its hypernetworks' training options overridden by `options` (flat keys)."""
    return replace(truth, fit=build(FitConfig, {**truth.fit.record(), **options})) if options else truth


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
                raise CheckpointError(f"hypernetwork {path} is {state}: `python -m benchmarks.budget` trains it")
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
    def held_out(self) -> bool:
        """Whether seed 0 is held out of the truth (a table of three seeds or more)."""
        return len(self.table.by_seed) >= 3

    @cached_property
    def truth_table(self) -> Table:
        """The seeds the truth is the mean of."""
        return self.table.seeds([s for s in self.table.by_seed if not (self.held_out and s == LABEL_SEED)])

    @cached_property
    def acc(self) -> np.ndarray:
        """The truth: each architecture's mean accuracy over the truth's seeds."""
        return np.array(self.truth_table.mean)

    @cached_property
    def label(self) -> np.ndarray:
        """Seed 0's accuracies: what one final training reports."""
        return np.array(self.table.by_seed[LABEL_SEED])

    @cached_property
    def params(self) -> np.ndarray:
        return np.array([param_count(G, self.data.ndim) for G in self.graphs], dtype=float)

    @cached_property
    def flops(self) -> np.ndarray:
        return np.array([flops(G, self.data.input_size) for G in self.graphs], dtype=float)


def load_table(name: str, truth: Truth, limit: int | None = None, data: Dataset | None = None) -> Loaded:
    """A truth's table (its first `limit` architectures), data and graphs, without hypernetworks.
    `data` replaces the truth's dataset where a checkpoint was made with another split of it."""
    table = merged_table(truth.tables).head(limit)
    data, space = data or load_dataset(truth.dataset), get_space(truth.space)
    graphs = [arch_graph(space, a, data.in_channels, data.num_classes) for a in table.archs]
    return Loaded(name, truth, table, data, space, graphs, [])


def load(name: str, truth: Truth, runs: int, hypernet_dir: str, *, train: bool = False, score: bool = True,
         limit: int | None = None) -> Loaded:
    """A truth's table (its first `limit` architectures), graphs and `runs` hypernetworks'
    scores. With `train`, missing hypernetworks are trained first; without, they are refused."""
    loaded = load_table(name, truth, limit)
    loaded.hypernets = hypernet_paths(name, truth, runs, hypernet_dir, *((loaded.data, loaded.space) if train else ()))
    if score:
        scorers = [Scorer.from_checkpoint(p, loaded.data, samples=1) for p in loaded.hypernets]  # the central prediction
        loaded.scores = [np.array([s.score for s in scorer.score(loaded.graphs, progress=True)]) for scorer in scorers]
    return loaded


def describe(loaded: Loaded) -> dict:
    """A truth's name and one line on how far it can be trusted: its seeds, best, seed-to-seed
    tau, noise ceiling and, in its top half, the noise of a mean against the spread of the means."""
    by_seed = loaded.truth_table.by_seed
    seeds = sorted(by_seed)
    parts = [f"{len(loaded.acc)} architectures; truth = mean test accuracy of seeds {seeds[0]}..{seeds[-1]} "
             f"({len(seeds)} runs{'; seed 0 held out as one training run' if loaded.held_out else ''})",
             f"best {loaded.acc.max():.4f}"]
    if len(seeds) >= 2:
        noise, ceiling = truth_noise(by_seed), noise_ceiling(by_seed)
        parts += [f"seed-to-seed tau {seed_to_seed_tau(by_seed):.3f}", f"noise ceiling tau {ceiling:.3f}",
                  f"top half: noise of a mean {noise.noise_of_mean:.4f} against a spread of {noise.spread:.4f} "
                  f"(ratio {noise.ratio:.2f})"]
    if loaded.truth.secondary:
        parts.append("a secondary truth (its test split is small)")
    return {"name": loaded.name, "summary": "; ".join(parts)}
