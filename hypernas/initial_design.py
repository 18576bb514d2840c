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
from typing import Any

import torch
from tqdm.auto import tqdm

from hypernas.graph import canonical_hash
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
            if key not in cache:
                cache[key] = synflow(G, x, seed=0)
            scored.append((cache[key], len(scored), trial.params))
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [params for _, _, params in scored[:k]]
