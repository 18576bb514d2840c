"""Deployment limits: a network's parameters, FLOPs and latency, measured before it is scored.

Parameters and FLOPs come from the graph, without torch. Latency is measured on the search's
device: the median of repeated forward passes at batch 1 after a warm-up, cached by canonical
hash (equivalent networks run alike) and recorded with how it was measured. A network over a
limit is never scored by the hypernetwork: it is told to the sampler as infeasible, with its
constraint values (Optuna's convention: each at most 0 when met), so the sampler learns where
the feasible region is.

Usage:
    limits = Limits(max_params=20_000, max_latency=None)
    measures = Measurer(limits, objectives, data, "cpu").measure(info, key)
    measures.feasible, measures.constraints, measures.attrs
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from hypernas.errors import OptionError
from hypernas.graph import GraphInfo, flops, param_count

LATENCY_WARMUP, LATENCY_REPEATS = 3, 15  # batch-1 forward passes: dropped, then timed (the median is kept)
MEETABLE_DRAWS, LATENCY_DRAWS = 2000, 50  # random architectures the early check builds, and times at most


@dataclass(frozen=True)
class Limits:
    """At most `max_params` parameters, `max_flops` multiply-accumulates per sample and
    `max_latency` milliseconds per batch-1 forward pass; None is no limit."""

    max_params: int | None = None
    max_flops: int | None = None
    max_latency: float | None = None

    @property
    def count(self) -> int:
        """How many limits are set."""
        return sum(v is not None for v in (self.max_params, self.max_flops, self.max_latency))

    @property
    def active(self) -> bool:
        return self.count > 0

    def record(self) -> dict[str, Any]:
        return {"max_params": self.max_params, "max_flops": self.max_flops, "max_latency": self.max_latency}


@dataclass
class Measures:
    """What the limits and objectives read of one network, and whether it meets the limits."""

    params: int
    flops: int
    latency_ms: float | None
    constraints: list[float] = field(default_factory=list)  # per active limit: value - limit (<= 0 when met)
    attrs: dict[str, Any] = field(default_factory=dict)  # what the trial records

    @property
    def feasible(self) -> bool:
        return all(c <= 0 for c in self.constraints)


class Measurer:
    """Measures networks for one search: latency only where a limit or an objective needs it,
    each network once (cached by canonical hash)."""

    def __init__(self, limits: Limits, objectives: tuple[str, ...], ndim: int, input_size: tuple[int, ...],
                 device: str = "cpu"):
        self.limits, self.ndim, self.input_size, self.device = limits, ndim, tuple(input_size), device
        self.timed = limits.max_latency is not None or "latency" in objectives
        self.latency: dict[str, float] = {}  # canonical hash -> ms

    def latency_of(self, info: GraphInfo, key: str) -> float:
        """Milliseconds of one batch-1 pass of the network with canonical hash `key`, measured once."""
        if key not in self.latency:
            self.latency[key] = measure_latency(info, self.ndim, self.input_size, self.device)
        return self.latency[key]

    def measure(self, info: GraphInfo, key: str) -> Measures:
        p, f = param_count(info, self.ndim), flops(info, self.input_size)
        latency = self.latency_of(info, key) if self.timed else None
        m = Measures(p, f, latency)
        for value, limit in ((p, self.limits.max_params), (f, self.limits.max_flops),
                             (latency, self.limits.max_latency)):
            if limit is not None:
                m.constraints.append(float(value - limit))
        if latency is not None:
            m.attrs.update(latency_ms=round(latency, 4), latency_measured=latency_conditions(self.device))
        if self.limits.active:
            m.attrs.update(feasible=m.feasible, constraints=m.constraints)
            if not m.feasible:
                m.attrs["infeasible"] = self.explain(m)
        return m

    def explain(self, m: Measures) -> str:
        over = []
        for name, value, limit, unit in (("params", m.params, self.limits.max_params, ""),
                                         ("FLOPs", m.flops, self.limits.max_flops, ""),
                                         ("latency", m.latency_ms, self.limits.max_latency, " ms")):
            if limit is not None and value > limit:
                over.append(f"{name} {value:,.4g}{unit} > {limit:,.4g}{unit}" if unit else f"{name} {value:,} > {limit:,}")
        return "; ".join(over)


def latency_conditions(device: str) -> str:
    """How a latency was measured: where, with how many threads, with which torch."""
    import torch

    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    return (f"median of {LATENCY_REPEATS} batch-1 forward passes after {LATENCY_WARMUP}, on {where}, "
            f"{torch.get_num_threads()} thread(s), torch {torch.__version__}")


def measure_latency(info: GraphInfo, ndim: int, input_size: tuple[int, ...], device: str = "cpu") -> float:
    """Milliseconds of one batch-1 forward pass: the median of `LATENCY_REPEATS` after
    `LATENCY_WARMUP` (the first passes pay for allocation and kernel choice)."""
    import torch

    from hypernas.compile import GraphModule

    with torch.random.fork_rng(devices=[]):  # the weights do not matter to the time; the global RNG must not move
        torch.manual_seed(0)
        model = GraphModule(None, ndim, info=info).eval().to(device)
    x = torch.randn(1, info.in_channels, *input_size, device=device)
    times = []
    with torch.no_grad():
        for i in range(LATENCY_WARMUP + LATENCY_REPEATS):
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            if i >= LATENCY_WARMUP:
                times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def check_meetable(limits: Limits, measurer: Measurer, space: Any, options: dict, in_channels: int,
                   num_classes: int) -> None:
    """Refuse, before any training, limits that no architecture of the space meets, saying how
    close the best of a random sample came."""
    if not limits.active:
        return
    from hypernas.graph import canonical_hash
    from hypernas.spaces import RandomTrial

    rng = random.Random("limits")
    infos = [space.build_info(RandomTrial(rng), in_channels, num_classes, **options)[1] for _ in range(MEETABLE_DRAWS)]
    sizes = [(param_count(i, measurer.ndim), flops(i, measurer.input_size)) for i in infos]
    for k, (name, limit) in enumerate((("parameters", limits.max_params), ("FLOPs", limits.max_flops))):
        if limit is not None and not any(s[k] <= limit for s in sizes):
            raise OptionError(f"none of {MEETABLE_DRAWS:,} sampled architectures has at most {limit:,} {name}; "
                              f"the smallest had {min(s[k] for s in sizes):,}")
    within = [i for i, (p, f) in zip(infos, sizes) if (limits.max_params is None or p <= limits.max_params)
              and (limits.max_flops is None or f <= limits.max_flops)]
    if limits.max_params is not None and limits.max_flops is not None and not within:
        raise OptionError(f"none of {MEETABLE_DRAWS:,} sampled architectures meets both the parameter and the FLOPs "
                          "limit, though some meet each")
    if limits.max_latency is not None:
        sample = sorted(within, key=lambda i: flops(i, measurer.input_size))[:LATENCY_DRAWS]  # the likeliest to be fast
        times = [measurer.latency_of(i, canonical_hash(i)) for i in sample]
        if min(times) > limits.max_latency:
            raise OptionError(f"none of the {len(sample)} cheapest of {MEETABLE_DRAWS:,} sampled architectures runs "
                              f"in at most {limits.max_latency:g} ms on {measurer.device}; the fastest took "
                              f"{min(times):.3g} ms")
