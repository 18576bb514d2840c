"""Deployment limits: a network's parameters, FLOPs and latency, measured before it is scored.

Parameters and FLOPs are counted from the graph, without building a network. Latency is
measured on the search's device, on the form a user deploys: the network traced
(`torch.jit.trace`; hypernas's own graph interpreter runs several times slower), timed by
`torch.utils.benchmark` (a warm-up, then blocks of batch-1 passes, on for longer while they
vary), as the median of the blocks with their interquartile range beside it; on one CPU thread
in the thread's CPU time, which another process taking the core does not inflate. A network
over a latency limit by less than the limit itself, or by less than its own spread, is measured
again before it is called infeasible, keeping the lowest median: another process on the
machine only ever adds time. A spread that large for its value says the machine is busy, and
the search says so once. Latencies are cached by canonical hash (equivalent networks run
alike) and recorded with how they were measured. A network over a limit is never scored by the
hypernetwork: it is told to the sampler as infeasible, with its constraint values (Optuna's
convention: each at most 0 when met), so the sampler learns where the feasible region is.

Usage:
    limits = Limits(max_params=20_000, max_latency=None)
    measures = Measurer(limits, objectives, data.ndim, data.input_size, "cpu").measure(info, key)
    measures.feasible, measures.constraints, measures.attrs
"""

from __future__ import annotations

import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from hypernas.errors import OptionError, warn
from hypernas.graph import GraphInfo, flops, param_count

LATENCY_SECONDS, LATENCY_MAX_SECONDS = 0.05, 0.25  # timed per look: at least, and at most while the blocks vary
LATENCY_STEADY = 0.1  # blocks whose interquartile range is below this share of their median need no more
LATENCY_WARMUP = 3  # untimed passes first
# A network over the limit by less than this share of it is measured again: on a shared machine
# one look can take twice as long as the next, whatever its own spread says;
LATENCY_MARGIN = 1.0
LATENCY_SPREADS = 3  # and so is one within this many of its spreads of the limit,
LATENCY_LOOKS = 3  # at most this many measurements in all
BUSY_SPREAD = 0.25  # an interquartile range above this share of the median: the machine looks busy
MEETABLE_DRAWS, MEETABLE_CHUNK, LATENCY_DRAWS = 2000, 200, 10  # the early check: draws, per look, timed at most
HOPELESS = 0.5  # a limit below this share of the smallest of the first draws is refused without drawing more


@dataclass(frozen=True)
class Latency:
    """Milliseconds per batch-1 pass: the median of the timed blocks, their interquartile range."""

    ms: float
    spread_ms: float
    blocks: int = 0

    @property
    def busy(self) -> bool:
        return self.spread_ms > BUSY_SPREAD * self.ms


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
    each network once (cached by canonical hash), again where the first look was near the limit."""

    def __init__(self, limits: Limits, objectives: tuple[str, ...], ndim: int, input_size: tuple[int, ...],
                 device: str = "cpu"):
        self.limits, self.ndim, self.input_size, self.device = limits, ndim, tuple(input_size), device
        self.timed = limits.max_latency is not None or "latency" in objectives
        self.latency: dict[str, tuple[Latency, int]] = {}  # canonical hash -> (the lowest, measurements)
        self.warned = False

    def latency_of(self, info: GraphInfo, key: str) -> Latency:
        """The batch-1 latency of the network with canonical hash `key`: measured once, and again
        (up to `LATENCY_LOOKS` in all) while it is over the limit but near it, keeping the lowest."""
        if key not in self.latency:
            looks = [time_latency(info, self.ndim, self.input_size, self.device)]
            while len(looks) < LATENCY_LOOKS and self._near(min(looks, key=lambda m: m.ms)):
                looks.append(time_latency(info, self.ndim, self.input_size, self.device))
            busy = next((m for m in looks if m.busy), None)
            if busy and not self.warned:
                self.warned = True
                warn(f"latency measurements vary (a spread of {busy.spread_ms:.3g} ms about {busy.ms:.3g} ms): the "
                     "machine looks busy, which only ever adds time; networks near the limit are measured again, but "
                     "a quiet machine (and --threads 1) measures truer")
            self.latency[key] = min(looks, key=lambda m: m.ms), len(looks)
        return self.latency[key][0]

    def _near(self, m: Latency) -> bool:
        """Over the limit, but by less than the margin or than its own spread: worth another look."""
        limit = self.limits.max_latency
        return limit is not None and m.ms > limit and (
            m.ms <= limit * (1 + LATENCY_MARGIN) or m.ms - LATENCY_SPREADS * m.spread_ms <= limit)

    def measure(self, info: GraphInfo, key: str) -> Measures:
        p, f = param_count(info, self.ndim), flops(info, self.input_size)
        latency = self.latency_of(info, key) if self.timed else None
        m = Measures(p, f, None if latency is None else latency.ms)
        for value, limit in ((p, self.limits.max_params), (f, self.limits.max_flops),
                             (m.latency_ms, self.limits.max_latency)):
            if limit is not None:
                m.constraints.append(float(value - limit))
        if latency is not None:
            m.attrs.update(latency_ms=round(latency.ms, 4), latency_spread_ms=round(latency.spread_ms, 4),
                           latency_measurements=self.latency[key][1], latency_measured=latency_conditions(self.device))
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


def _clock(device: str):
    """What a latency is timed in. On one CPU thread the pass runs in this thread, so its CPU time
    is its latency on an idle core, and another process taking the core adds nothing to it (wall
    time would count the wait)."""
    import torch

    return time.thread_time if device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter


def latency_conditions(device: str) -> str:
    """How a latency was measured: what, where, with how many threads, with which torch."""
    import torch

    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
    clock = "the thread's CPU time" if _clock(device) is time.thread_time else "wall time"
    return (f"median (interquartile range: latency_spread_ms) of blocks of batch-1 forward passes, in {clock}, over "
            f"{LATENCY_SECONDS:g} to {LATENCY_MAX_SECONDS:g} s after a warm-up (torch.utils.benchmark), of the network "
            f"traced (torch.jit.trace), on {where}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")


def time_latency(info: GraphInfo, ndim: int, input_size: tuple[int, ...], device: str = "cpu") -> Latency:
    """Batch-1 latency of the network as deployed: traced (`torch.jit.trace`), then timed by
    `torch.utils.benchmark` in blocks (it picks the block size and synchronises CUDA) for at
    least `LATENCY_SECONDS`, and on while the blocks vary, up to `LATENCY_MAX_SECONDS`; the
    median of the blocks and their interquartile range."""
    import torch
    from torch.utils import benchmark

    from hypernas.compile import GraphModule

    with torch.random.fork_rng(devices=[]):  # the weights do not matter to the time; the global RNG must not move
        torch.manual_seed(0)
        model = GraphModule(None, ndim, info=info).eval().to(device)
    x = torch.randn(1, info.in_channels, *input_size, device=device)
    with torch.no_grad(), warnings.catch_warnings():
        # Deprecated in favour of torch.export, whose module runs its graph in Python, slower than any
        # deployed runtime; a trace is what TorchScript and most deployments still run.
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, x, check_trace=False)  # the graph is fixed: checking would trace it twice
        for _ in range(LATENCY_WARMUP):  # TorchScript profiles its first runs, then optimises the graph
            traced(x)
        timer = benchmark.Timer("model(x)", globals={"model": traced, "x": x}, num_threads=torch.get_num_threads(),
                                timer=_clock(device))
        m = timer.adaptive_autorange(LATENCY_STEADY, min_run_time=LATENCY_SECONDS, max_run_time=LATENCY_MAX_SECONDS)
    return Latency(1000 * m.median, 1000 * m.iqr, len(m.times))


def measure_latency(info: GraphInfo, ndim: int, input_size: tuple[int, ...], device: str = "cpu") -> float:
    """Milliseconds of one batch-1 forward pass (`time_latency`'s median)."""
    return time_latency(info, ndim, input_size, device).ms


def check_meetable(limits: Limits, measurer: Measurer, space: Any, options: dict, in_channels: int,
                   num_classes: int, progress: bool = True) -> None:
    """Before any training: say the range of sizes and FLOPs of random draws from the space, and
    refuse limits that none meets, naming that range. Draws go in chunks, and stop as soon as
    the limits are met, or are far below the smallest of the first draws (`HOPELESS`)."""
    from hypernas.graph import canonical_hash
    from hypernas.spaces import RandomTrial

    rng = random.Random("limits")
    infos, sizes = [], []
    with tqdm(total=MEETABLE_DRAWS, desc="limit check", unit="arch", disable=not progress) as bar:
        while len(infos) < MEETABLE_DRAWS:
            for _ in range(MEETABLE_CHUNK):
                infos.append(space.build_info(RandomTrial(rng), in_channels, num_classes, **options)[1])
                sizes.append((param_count(infos[-1], measurer.ndim), flops(infos[-1], measurer.input_size)))
            bar.update(MEETABLE_CHUNK)
            within = [i for i, s in zip(infos, sizes) if _within(limits, s)]
            smallest = [min(s[k] for s in sizes) for k in (0, 1)]
            if len(within) >= (LATENCY_DRAWS if limits.max_latency is not None else 1) or any(
                    limit is not None and limit < HOPELESS * low
                    for limit, low in zip((limits.max_params, limits.max_flops), smallest)):
                bar.total = len(infos)  # settled early: the bar ends full, not at a tenth
                bar.refresh()
                break
    n = len(infos)
    ranges = [f"{min(s[k] for s in sizes):,} to {max(s[k] for s in sizes):,} {name}"
              for k, name in enumerate(("parameters", "FLOPs"))]
    print(f"space {space.name} {options}: {ranges[0]}, {ranges[1]} (multiply-accumulates per sample) over {n:,} "
          "random draws")
    for k, (name, limit) in enumerate((("parameters", limits.max_params), ("FLOPs", limits.max_flops))):
        if limit is not None and not any(s[k] <= limit for s in sizes):
            raise OptionError(f"none of {n:,} sampled architectures has at most {limit:,} {name}; sampled, the space "
                              f"ranges from {ranges[k]}")
    if not within:
        raise OptionError(f"none of {n:,} sampled architectures meets both the parameter and the FLOPs limit, though "
                          f"some meet each; sampled, the space ranges from {ranges[0]} and {ranges[1]}")
    if limits.max_latency is not None:
        sample = sorted(within, key=lambda i: flops(i, measurer.input_size))[:LATENCY_DRAWS]  # the likeliest to be fast
        times = []
        for info in tqdm(sample, desc="latency check", unit="arch", disable=not progress):
            times.append(measurer.latency_of(info, canonical_hash(info)).ms)
            if times[-1] <= limits.max_latency:
                break  # one is enough
        if min(times) > limits.max_latency:
            raise OptionError(f"none of the {len(sample)} cheapest of {n:,} sampled architectures runs in at most "
                              f"{limits.max_latency:g} ms on {measurer.device}; the fastest took {min(times):.3g} ms")


def _within(limits: Limits, size: tuple[int, int]) -> bool:
    return all(limit is None or value <= limit for value, limit in zip(size, (limits.max_params, limits.max_flops)))
