"""Score architectures with hypernetwork-predicted weights on the validation slice.

For each architecture: predict all its weights in one batched hypernetwork pass, run it
on the validation slice of the train split (never the test set), and report the score
(exp(-loss)), accuracy and loss as mean +- std over `samples` draws. A draw is one noise input to the hypernetwork
(SMASH): draw 0 is the central prediction (zero noise), later draws are seeded by the
seed and the architecture's hash, so a score never depends on what it was batched with.
BatchNorm uses the statistics of the whole validation slice: predicted weights come with
no running statistics, and one fixed batch makes every architecture see the same data.

Isomorphic duplicates are scored once: results are cached by canonical hash.

`split="train"` scores on the first samples of the hypernetwork's own training split instead,
as many as the validation slice holds (same cost). It ranked better on MNIST-1D and worse on
digits, where the hypernetwork memorises a small training split (BENCHMARKS.md), so the
validation slice is the default. Neither ever touches the test set.

Usage:
    scorer = Scorer.from_checkpoint("runs/a/hypernet.pt", load_dataset("mnist1d"), samples=3)
    results = scorer.score(graphs)   # list[Score], in input order
"""

from __future__ import annotations

import hashlib
import math
import statistics
from dataclasses import asdict, dataclass
from typing import Protocol

import networkx as nx
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hypernas.batched import EXECUTIONS, run_programs
from hypernas.compile import Program
from hypernas.config import MAX_SAMPLES, SPLITS
from hypernas.data import Dataset
from hypernas.errors import GraphError, OptionError, SpaceError, warn
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.encode import encode
from hypernas.ghn.model import GraphHyperNetwork, predict_weights
from hypernas.ghn.start import scoring_samples
from hypernas.graph import GraphInfo, as_info, canonical_hash, flops, param_count
from hypernas.ops import RunContext
from hypernas.spaces import recorded_space


@dataclass(frozen=True)
class Score:
    """The ranking value is `score`: the geometric mean of the probability the network gives
    the true class, exp(-cross-entropy). It orders like the loss, reads like an accuracy, and
    ranked more consistently than accuracy across hypernetwork runs (BENCHMARKS.md)."""

    hash: str
    score: float  # mean over draws of exp(-loss); loss and accuracy on the scoring samples (validation by default)
    score_std: float
    accuracy: float  # mean accuracy over draws
    accuracy_std: float
    loss: float  # mean cross-entropy over draws
    loss_std: float
    params: int
    flops: int
    degenerate: bool
    samples: int

    def to_dict(self) -> dict:
        return asdict(self)


class NetworkScorer(Protocol):
    """What the search loop scores with: the hypernetwork's `Scorer` here, or a benchmark's
    table oracle, which answers each network with its known accuracy."""

    def score(self, graphs: list[GraphInfo], keys: list[str]) -> list[Score]:
        """One `Score` per network, in order; `keys` are their canonical hashes."""
        ...


LEARNED = "learned"  # Scorer's default `space`: the one the hypernetwork learned, as its checkpoint records


class Scorer:
    """Batched, cached scoring of architectures by one trained hypernetwork.

    A graph outside the space the hypernetwork learned (another skeleton, say) is refused: by
    default the space and options its checkpoint records (`load_hypernet` keeps them on the
    model), or the `SpaceCheck` given; `space=None` scores any graph, for callers whose graphs
    come from that very space (the search).

    Usage: Scorer(load_hypernet("runs/a/hypernet.pt").model, data, samples=2).score(graphs)"""

    def __init__(self, ghn: GraphHyperNetwork, data: Dataset, samples: int = 1, seed: int = 0,
                 batch: int = 64, device: str = "cpu", split: str = "val", space: "SpaceCheck | str | None" = LEARNED,
                 execution: str = "auto"):
        if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
            raise OptionError(f"samples must be an integer from 1 to {MAX_SAMPLES}, got {samples!r}")
        if split not in SPLITS:
            raise OptionError(f"score split must be one of {', '.join(SPLITS)}, not {split!r}")
        if ghn.ndim != data.ndim:
            raise GraphError(f"the hypernetwork was built for {ghn.ndim}-D data, the data is {data.ndim}-D")
        self.ghn, self.data, self.samples, self.seed = ghn.eval(), data, samples, seed
        if execution not in EXECUTIONS:
            raise OptionError(f"execution must be one of {', '.join(EXECUTIONS)}, not {execution!r}")
        self.batch, self.device, self.execution = batch, device, execution  # how a batch's networks run
        x, y = scoring_samples(data, split)
        self.x, self.y = x.to(device), y.to(device)
        self.space = SpaceCheck.learned_by(ghn, data) if space == LEARNED else space
        self.cache: dict[str, Score] = {}
        self.hits = 0

    @classmethod
    def from_checkpoint(cls, path: str, data: Dataset, **kwargs) -> "Scorer":
        """A scorer for `data` from a checkpoint; refuses one trained for other data, and graphs
        of another space or other space options than it learned (`SpaceCheck`).

        Usage: Scorer.from_checkpoint("runs/a/hypernet.pt", data, samples=2).score(graphs)"""
        return cls(load_hypernet(path, data=data, device=kwargs.get("device", "cpu")).model, data, **kwargs)

    def _noise(self, key: str, draw: int) -> torch.Tensor:
        if draw == 0:
            return torch.zeros(self.ghn.config.noise)
        digest = hashlib.blake2b(f"{self.seed}:{key}:{draw}".encode(), digest_size=8).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)  # stable across processes
        return torch.randn(self.ghn.config.noise, generator=g)

    @torch.no_grad()
    def score(self, graphs: list[nx.DiGraph | GraphInfo], keys: list[str] | None = None,
              progress: bool = False) -> list[Score]:
        """Scores in input order; duplicates (by canonical hash) are computed once.

        Graphs may come already validated (`GraphInfo`), and with their hashes in `keys`.
        `progress` shows a bar (draws of an architecture scored, rate, time left)."""
        infos = [as_info(G) for G in graphs]
        if self.space is not None:
            for info in infos:
                self.space.check(info)
        keys = keys if keys is not None else [canonical_hash(info) for info in infos]
        todo: dict[str, GraphInfo] = {}
        for key, info in zip(keys, infos):
            if key in self.cache or key in todo:
                self.hits += 1
            else:
                todo[key] = info
        items = list(todo.items())
        with tqdm(total=len(items) * self.samples, desc="score", unit="draw", disable=not progress) as bar:
            for i in range(0, len(items), self.batch):
                self._score_batch(items[i : i + self.batch], bar)
        return [self.cache[k] for k in keys]

    def _score_batch(self, items: list[tuple[str, GraphInfo]], bar: tqdm) -> None:
        ndim = self.ghn.ndim
        infos = [info for _, info in items]
        batch = encode(infos, self.ghn.ops, ndim, self.ghn.config.s_max).to(self.device)
        programs = [Program(info, ndim) for info in infos]
        ctx = RunContext(ndim, batch_stats=True)
        accs: list[list[float]] = [[] for _ in items]
        losses: list[list[float]] = [[] for _ in items]
        for draw in range(self.samples):
            noise = torch.stack([self._noise(k, draw) for k, _ in items]).to(self.device)
            outputs = run_programs(programs, self.x, predict_weights(self.ghn, batch, noise), ctx, self.execution)
            for j, logits in enumerate(outputs):
                losses[j].append(F.cross_entropy(logits, self.y).item())
                accs[j].append((logits.argmax(1) == self.y).float().mean().item())
            bar.update(len(items))
        for j, (key, info) in enumerate(items):
            likelihoods = [math.exp(-loss) for loss in losses[j]]
            self.cache[key] = Score(
                hash=key, score=statistics.fmean(likelihoods), score_std=_std(likelihoods), accuracy=statistics.fmean(accs[j]), accuracy_std=_std(accs[j]),
                loss=statistics.fmean(losses[j]), loss_std=_std(losses[j]), params=param_count(info, ndim),
                flops=flops(info, self.data.input_size), degenerate=info.degenerate, samples=self.samples)


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


class SpaceCheck:
    """Whether a graph belongs to a space with given options, as far as the hypernetwork can
    tell: each of its nodes (op, attributes, input widths) is a kind that random draws from
    the space make. Scoring a C=16 NB201 cell with a hypernetwork trained at C=8 would
    otherwise give a meaningless score, silently.

    Usage: SpaceCheck(get_space("nb201"), {"channels": 8, "cells": 1}, 1, 10).check(validate(G))"""

    DRAWS = 500  # enough to meet every node kind of the built-in spaces many times over

    def __init__(self, space, options: dict, in_channels: int, num_classes: int):
        import random

        from hypernas.spaces import BUILTIN, RandomTrial

        self.space, self.options = space, options
        self.strict = space.name in BUILTIN  # a user's space may have ranges no sample covers: warn there
        rng = random.Random("space-check")
        self.kinds: set = set()
        for _ in range(self.DRAWS):
            self.kinds |= {_kind(n) for n in space.build_info(RandomTrial(rng), in_channels, num_classes, **options)[1].nodes}

    @classmethod
    def learned_by(cls, ghn: GraphHyperNetwork, data: Dataset) -> SpaceCheck | None:
        """The check of the space a loaded hypernetwork learned (None for one built in memory,
        which records none). A user's space is code, and a recorded name never imports it."""
        learned = getattr(ghn, "learned", None)
        if learned is None:
            return None
        try:
            space = recorded_space(learned["space"], None, "the hypernetwork")
        except SpaceError:
            raise SpaceError(f"the hypernetwork learned the space {learned['space']!r}, which is code: pass "
                             "Scorer(..., space=SpaceCheck(get_space(...), options, in_channels, num_classes)), or "
                             "space=None to score graphs of that space unchecked") from None
        return cls(space, learned["space_options"], data.in_channels, data.num_classes)

    def check(self, info: GraphInfo) -> None:
        unknown = [n for n in info.nodes if _kind(n) not in self.kinds]
        if not unknown:
            return
        n = unknown[0]
        text = (f"node {n.name!r} ({n.op.name} {n.attrs}, from {[s.channels for s in n.in_shapes]} channels) is not "
                f"in space {self.space.name!r} with options {self.options}, which the hypernetwork learned; score "
                "graphs built with those options")
        if self.strict:
            raise GraphError(text)
        warn(text)


def _kind(n) -> tuple:
    return n.op.name, tuple(sorted(n.attrs.items())), tuple(s.channels for s in n.in_shapes)
