"""The scorers the benches put beside the hypernetwork, each a function of a list of graphs.

Choices: the data proxies use the first 64 samples of the validation slice (the batch
Abdelfattah et al. use on NB201). MNIST-1D has 40 input values, so more samples than that
make every Jacobian correlation matrix rank deficient and wreck jacob_cov. Proxy weights and
one-epoch training are seeded by the bench's seed. Nothing here looks at the test split.

Usage:
    scorer = proxy_scorer("naswot", data, seed=0)
    values = scorer(graphs)        # one float per graph, higher = better
"""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from hypernas.data import Dataset
from hypernas.graph import flops, param_count
from hypernas.proxies import PROXIES, one_epoch
from hypernas.score import Scorer

PROXY_BATCH = 64  # samples of the validation slice for the data proxies (see above)
GraphScorer = Callable[[list[nx.DiGraph]], list[float]]


def hypernet_scorer(path: str, data: Dataset, samples: int = 1, key: str = "score", split: str = "val") -> GraphScorer:
    """The hypernetwork's score (exp(-loss)), or with key='accuracy' its accuracy, on the
    validation slice or (split='train') as many training samples (`hypernas.score`)."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        results = Scorer.from_checkpoint(path, data, samples=samples, split=split).score(graphs)
        return [getattr(r, key) for r in results]

    return score


def param_scorer(data: Dataset) -> GraphScorer:
    return lambda graphs: [param_count(G, data.ndim) for G in graphs]


def flops_scorer(data: Dataset) -> GraphScorer:
    return lambda graphs: [flops(G, data.input_size) for G in graphs]


def rank_average(*scorers: GraphScorer) -> GraphScorer:
    """A scorer that averages the ranks its scorers give (equal weights: nothing to fit)."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        return list(np.mean([stats.rankdata(s(graphs)) for s in scorers], axis=0))

    return score


def proxy_scorer(name: str, data: Dataset, seed: int, batch: int = PROXY_BATCH) -> GraphScorer:
    """A zero-cost proxy of `hypernas.proxies` on the first `batch` samples of the validation slice."""
    x, y, fn = data.x_val[:batch], data.y_val[:batch], PROXIES[name]

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        return [fn(G, x, y, seed) for G in tqdm(graphs, desc=name, unit="arch", leave=False)]

    return score


def one_epoch_scorer(data: Dataset, seed: int) -> GraphScorer:
    """Validation accuracy after one epoch of normal training (without the validation slice)."""

    def score(graphs: list[nx.DiGraph]) -> list[float]:
        return [one_epoch(G, data, seed) for G in tqdm(graphs, desc="one-epoch training", unit="arch")]

    return score
