"""A data-free initial design: start the search from the architectures synflow likes best.

Before the sampler has seen anything, its first proposals are blind. Synflow (a zero-cost
proxy, `hypernas.proxies.synflow`) needs no data and no training, only the input's shape,
so ranking a pool of random distinct architectures by it costs a forward and a backward
pass each. The best `k` are enqueued as the first trials; the sampler takes over from there.
Synflow values are cached by canonical hash, so a pool shared by several runs is scored once.

Usage:
    params = synflow_design(get_space("nb201"), {}, in_channels=3, num_classes=10, input_size=(32, 32), k=10)
    for p in params: study.enqueue_trial(p)
"""

from __future__ import annotations

import random
from typing import Any, Callable

import optuna
import torch
from tqdm.auto import tqdm

from hypernas.errors import HypernasError
from hypernas.graph import canonical_hash, param_count
from hypernas.proxies import synflow
from hypernas.spaces import RandomTrial, Space


def synflow_design(space: Space, options: dict[str, Any], in_channels: int, num_classes: int,
                   input_size: tuple[int, ...], k: int, pool: int = 1000, seed: int = 0,
                   cache: dict[str, float] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """The parameters of the `k` best of `pool` random distinct, non-degenerate architectures
    by synflow, best first. The pool is drawn from `seed`; synflow's weights from seed 0."""
    rng = random.Random(f"initial-design-{seed}")
    cache = {} if cache is None else cache
    x = torch.zeros(1, in_channels, *input_size)  # synflow reads only the shape
    scored: list[tuple[float, int, dict]] = []
    seen: set[str] = set()
    with tqdm(total=pool, desc="initial design (synflow)", unit="arch", disable=not progress) as bar:
        for _ in range(pool * 20):  # a space smaller than the pool ends the draw early
            if len(seen) >= pool:
                break
            trial = RandomTrial(rng)
            G, info = space.build_info(trial, in_channels, num_classes, **options)
            key = canonical_hash(info)
            if key in seen:
                continue
            seen.add(key)
            bar.update()
            if info.degenerate:  # a dead network is never worth a first look
                continue
            scored.append((_synflow_cached(G, key, x, cache), len(scored), trial.params))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [params for _, _, params in scored[:k]]


def _synflow_cached(G, key: str, x: torch.Tensor, cache: dict[str, float]) -> float:
    if key not in cache:
        cache[key] = synflow(G, x, seed=0)
    return cache[key]


MOVE_PROXIES = ("synflow", "params")


def move_proxy(name: str, space: Space, options: dict[str, Any], in_channels: int, num_classes: int,
               input_size: tuple[int, ...], cache: dict[str, float] | None = None) -> Callable[[dict[str, Any]], float]:
    """Parameters -> a data-free score of their architecture, for local search to order its
    moves by: synflow (cached by canonical hash, in `cache`) or the parameter count. A dead
    (degenerate) network scores -inf. Parameters that do not make a network also score -inf.

    Usage: proxy = move_proxy("synflow", get_space("nb201"), {}, 3, 10, (32, 32)); proxy(trial.params)
    """
    if name not in MOVE_PROXIES:
        raise HypernasError(f"unknown move proxy {name!r}; choose from {', '.join(MOVE_PROXIES)}")
    cache = {} if cache is None else cache
    x = torch.zeros(1, in_channels, *input_size)
    known: dict[tuple, float] = {}  # parameters -> score: building the network again costs more than a lookup

    def score(params: dict[str, Any]) -> float:
        key = tuple(sorted(params.items()))
        if key not in known:
            known[key] = _score(params)
        return known[key]

    def _score(params: dict[str, Any]) -> float:
        try:
            G, info = space.build_info(optuna.trial.FixedTrial(params), in_channels, num_classes, **options)
        except (HypernasError, ValueError):  # FixedTrial: a parameter the move's branch needs is missing
            return float("-inf")
        if info.degenerate:
            return float("-inf")
        if name == "params":
            return float(param_count(info, len(input_size)))
        return _synflow_cached(G, canonical_hash(info), x, cache)

    return score
