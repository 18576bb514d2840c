"""Bayesian optimisation over the architecture graph itself: a GP with a Weisfeiler-Lehman kernel.

NAS-BOWL (Ru, Wan, Dong, Osborne, ICLR 2021) models an architecture's score as a Gaussian
process whose kernel compares the graphs: each graph is the bag of its Weisfeiler-Lehman
subtree labels (a node's operation, then that with the labels of its inputs, and so on for
`h` rounds), and the kernel is the normalised dot product of those bags. The depth `h` is
chosen by marginal likelihood. The next trial is the candidate of largest expected
improvement among the unseen one-parameter neighbors of the best trials and some random
draws (`pool="near"`), or among every unseen architecture of a space small enough to list
(`pool="all"`; the space is listed once per process, one network build per parameter
combination: 2.6 min for NB201's 15,625 cells at the default skeleton on one CPU thread). Unlike
one-hot parameters, the graph encoding shares what it learns between cells that compute
alike, and it needs no per-space code: it reads the simplified graph (`hypernas.graph.simplify`)
that the canonical hash also reads.

Works on spaces whose parameters are all categorical (NB201's edges); single objective.

Usage:
    sampler = WLGPSampler(graph_of=Networks(space, space.resolve_options({}), 3, 10), seed=0)
    sampler = WLGPSampler(graph_of=..., pool="all", seed=0)  # EI over the whole space
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import networkx as nx
import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.search_space import intersection_search_space
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from scipy import sparse
from scipy.stats import norm
from tqdm.auto import tqdm

from hypernas.errors import HypernasError, OptionError, SpaceError
from hypernas.graph import GraphInfo, canonical_hash, simplify
from hypernas.samplers.common import check_single_objective
from hypernas.spaces import Networks

_SHARED: dict[Any, dict] = {}  # context -> params -> bags, see `WLGPSampler`
_SPACES: dict[Any, dict] = {}  # context -> space -> its listing, for `pool="all"`
CACHE_LIMIT = 16_000  # bags kept per context: all of NB201's 15,625 cells (a long study in a larger space draws more)
LIST_LIMIT = 50_000  # the most parameter combinations `pool="all"` lists
POOLS = ("near", "all")
DEPTHS = (0, 1, 2)  # WL rounds the marginal likelihood chooses from (NAS-BOWL's range)
NOISES = (1e-4, 1e-3, 1e-2, 1e-1)  # noise variances of the standardised scores, chosen the same way


class WLGPSampler(optuna.samplers.BaseSampler):
    """GP-EI with a Weisfeiler-Lehman graph kernel after `n_startup_trials` random trials.
    `graph_of(params)` builds a trial's network (`GraphInfo`). The candidates: with `pool="near"`
    the `top` best trials' neighbors and `n_random` random draws; with `pool="all"` every
    unseen architecture of the space (at most `LIST_LIMIT` combinations). `seed` fixes the sequence."""

    def __init__(self, graph_of: Callable[[dict[str, Any]], GraphInfo] | None = None, n_startup_trials: int = 10,
                 top: int = 3, n_random: int = 50, pool: str = "near", seed: int | None = None):
        if not isinstance(n_startup_trials, int) or n_startup_trials < 2:
            raise OptionError(f"n_startup_trials must be an integer >= 2, got {n_startup_trials!r}")
        if pool not in POOLS:
            raise OptionError(f"pool is one of {', '.join(POOLS)}, got {pool!r}")
        self.graph_of, self.n_startup_trials, self.top, self.n_random = graph_of, n_startup_trials, top, n_random
        self.pool = pool
        self._random = optuna.samplers.RandomSampler(seed=seed)
        self._rng = np.random.default_rng(None if seed is None else [seed, 3])
        # params -> (hash, WL bags by depth). Given a `Networks`, whose key names the space, its
        # options and the data's shape, they are shared with every sampler of that key in this
        # process, as a benchmark's seeds do: building the networks is most of this sampler's time.
        self._context = graph_of.key if isinstance(graph_of, Networks) else None
        self._bags: dict[tuple, tuple[str, list[Counter]] | None] = (
            {} if self._context is None else _SHARED.setdefault(self._context, {}))
        self._listings: dict[tuple, Listing] = {} if self._context is None else _SPACES.setdefault(self._context, {})

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._rng = np.random.default_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        check_single_objective(study, type(self).__name__)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < self.n_startup_trials:
            return {}
        space = intersection_search_space(complete)
        if not all(isinstance(d, CategoricalDistribution) for d in space.values()):
            raise SpaceError("the wlgp sampler needs a space whose parameters are all categorical")
        if self.pool == "all":
            size = _size(space)
            if size > LIST_LIMIT:
                raise SpaceError(f'pool="all" lists the whole space, at most {LIST_LIMIT:,} parameter combinations; '
                                    f'this one has {size:,}: use pool="near"')
        return space

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        if self.graph_of is None:
            raise OptionError("the wlgp sampler needs graph_of, the function that builds a trial's network")
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        if self.pool == "all":
            return self._sample_listed(study, search_space, sign)
        trials = [(t, self._bag(t.params)) for t in study.get_trials(deepcopy=False) if t.params]
        done = [t for t, bag in trials if t.state == TrialState.COMPLETE and bag is not None]
        seen = {bag[0] for _, bag in trials if bag is not None}  # running and failed trials too
        candidates = self._candidates(done, search_space, seen, sign)
        if not candidates:
            return {}  # everything near is seen: the random sampler proposes
        y = np.array([sign * t.value for t in done])
        train, test = [self._bag(t.params)[1] for t in done], [self._bag(c)[1] for c in candidates]
        vocabs = []
        for depth in DEPTHS:  # labels only the candidates have count in their norm, as in the full kernel
            labels = sorted({label for bags in train + test for label in bags[depth]})
            vocabs.append({label: i for i, label in enumerate(labels)})
        scores = _expected_improvement([_features([b[d] for b in train], vocabs[d]) for d in DEPTHS], y,
                                       lambda d: _features([b[d] for b in test], vocabs[d]))
        return candidates[self._pick(scores)]

    def _sample_listed(self, study: optuna.Study, space: dict[str, CategoricalDistribution],
                       sign: float) -> dict[str, Any]:
        """`pool="all"`: EI over every unseen architecture of the listed space."""
        key = tuple((n, tuple(d.choices)) for n, d in space.items())
        if key not in self._listings:
            self._listings[key] = Listing.of(space, self.graph_of)
        listing = self._listings[key]
        rows = [(t, listing.row.get(_params_key(t.params))) for t in study.get_trials(deepcopy=False) if t.params]
        done = [(t, r) for t, r in rows if t.state == TrialState.COMPLETE and r is not None]
        unseen = np.ones(len(listing.params), dtype=bool)
        unseen[[r for _, r in rows if r is not None]] = False  # running and failed trials too
        candidates = np.flatnonzero(unseen)
        if not len(candidates) or not done:
            return {}
        y = np.array([sign * t.value for t, _ in done])
        train = [r for _, r in done]
        scores = _expected_improvement([F[train].toarray() for F in listing.features], y,
                                       lambda depth: listing.features[depth][candidates])
        return dict(listing.params[candidates[self._pick(scores)]])

    def _pick(self, scores: np.ndarray) -> int:
        """The index of the largest score, ties broken by the seeded generator."""
        best = np.flatnonzero(scores == scores.max())
        return int(best[self._rng.integers(len(best))])

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    # -- the model ----------------------------------------------------------------------------

    def _bag(self, params: dict[str, Any]) -> tuple[str, list[Counter]] | None:
        """`_bag_of`, cached."""
        key = _params_key(params)
        if key not in self._bags:
            if len(self._bags) >= CACHE_LIMIT:  # about 30 kB each: start afresh rather than grow without end
                self._bags.clear()
            self._bags[key] = _bag_of(self.graph_of, params)
        return self._bags[key]

    def _candidates(self, done: list[FrozenTrial], space: dict[str, CategoricalDistribution], seen: set[str],
                    sign: float) -> list[dict[str, Any]]:
        """Unseen architectures: the one-parameter neighbors of the `top` best, and random draws."""
        ranked = sorted(done, key=lambda t: -sign * t.value)[: self.top]
        pool = [{**t.params, n: v} for t in ranked for n, d in space.items() for v in d.choices if v != t.params[n]]
        for _ in range(self.n_random):
            pool.append({n: d.choices[self._rng.integers(len(d.choices))] for n, d in space.items()})
        out, hashes = [], set(seen)
        for params in pool:
            bag = self._bag(params)
            if bag is not None and bag[0] not in hashes:
                hashes.add(bag[0])
                out.append(params)
        return out


@dataclass
class Listing:
    """Every distinct architecture of a small space: one parameter set per canonical hash,
    the row of each parameter set, and per WL depth the unit-length label counts (sparse)."""

    params: list[tuple]
    row: dict[tuple, int]
    features: list[sparse.csr_matrix]

    @classmethod
    def of(cls, space: dict[str, CategoricalDistribution], graph_of: Callable[[dict[str, Any]], GraphInfo]) -> "Listing":
        params, row, first, bags = [], {}, {}, []
        combos = itertools.product(*(d.choices for d in space.values()))
        for values in tqdm(combos, total=_size(space), desc="wlgp: listing the space", unit="arch", leave=False,
                           disable=None):
            p = dict(zip(space, values))
            b = _bag_of(graph_of, p)
            if b is None:
                continue
            key = _params_key(p)
            if b[0] not in first:  # equivalent cells share one row: the kernel cannot tell them apart
                first[b[0]] = len(params)
                params.append(key)
                bags.append(b[1])
            row[key] = first[b[0]]
        features = []
        for depth in DEPTHS:
            vocab: dict[str, int] = {}
            for b in bags:
                for label in b[depth]:
                    vocab.setdefault(label, len(vocab))
            # 256 rows at a time: dense, all 5,425 NB201 rows would take 1 GB at depth 2 (27,000 labels)
            features.append(sparse.vstack([sparse.csr_matrix(_features([b[depth] for b in bags[i:i + 256]], vocab))
                                           for i in range(0, len(bags), 256)], format="csr"))
        return cls(params, row, features)


def _bag_of(graph_of: Callable[[dict[str, Any]], GraphInfo],
            params: dict[str, Any]) -> tuple[str, list[Counter]] | None:
    """(canonical hash, WL label bags for depths 0..max), None if the parameters build no network."""
    try:
        info = graph_of(params)
    except (HypernasError, ValueError):  # FixedTrial: a parameter is missing
        return None
    S = simplify(info).reverse(copy=False)  # each node hashes its inputs, upstream
    with warnings.catch_warnings():  # networkx notes a 3.5 change in directed hashes
        warnings.simplefilter("ignore", UserWarning)
        hashes = nx.weisfeiler_lehman_subgraph_hashes(S, node_attr="label", iterations=max(DEPTHS))
    bags = [Counter(S.nodes[n]["label"] for n in S)]
    for depth in range(max(DEPTHS)):
        bags.append(bags[-1] + Counter(h[depth] for h in hashes.values()))
    return canonical_hash(info), bags


def _params_key(params: dict[str, Any]) -> tuple:
    return tuple(sorted(params.items()))


def _size(space: dict[str, CategoricalDistribution]) -> int:
    """The number of parameter combinations."""
    return int(np.prod([len(d.choices) for d in space.values()], dtype=float))


def _expected_improvement(train: list[np.ndarray], y: np.ndarray, test: Callable[[int], Any]) -> np.ndarray:
    """EI of each test graph under the GP whose depth and noise maximise the marginal
    likelihood. `train[depth]` holds the trials' unit-length rows; `test(depth)` gives the
    candidates' (dense or sparse), asked for the chosen depth only."""
    y = (y - y.mean()) / (y.std() or 1.0)
    best = None
    for depth, F in zip(DEPTHS, train):
        K = F @ F.T
        for noise in NOISES:
            L = np.linalg.cholesky(K + noise * np.eye(len(y)))
            alpha = np.linalg.solve(L.T, np.linalg.solve(L, y))
            evidence = -0.5 * y @ alpha - np.log(np.diag(L)).sum()
            if best is None or evidence > best[0]:
                best = (evidence, depth, L, alpha)
    _, depth, L, alpha = best
    Ks = np.asarray(test(depth) @ train[depth].T)
    mean = Ks @ alpha
    v = np.linalg.solve(L, Ks.T)
    std = np.sqrt(np.maximum(1.0 - (v * v).sum(0), 1e-12))  # k(x, x) = 1 after normalising
    z = (mean - y.max()) / std
    return (mean - y.max()) * norm.cdf(z) + std * norm.pdf(z)


def _features(bags: list[Counter], vocab: dict[str, int]) -> np.ndarray:
    """Rows of label counts over `vocab`, unit length: the normalised WL kernel, so that
    repeated cells do not outweigh what distinguishes them."""
    F = np.zeros((len(bags), len(vocab)))
    for i, bag in enumerate(bags):
        for label, count in bag.items():
            F[i, vocab[label]] = count
    return F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), 1e-12)
