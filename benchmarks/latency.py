"""`python -m benchmarks.latency`: does a latency limit give the same feasible set beside a busy process?

`--archs` distinct architectures of a space are timed on a quiet machine (as the search times
them, `hypernas.budget.time_latency`, the lowest of `LATENCY_LOOKS` looks each), and the limit is
set at the `--quantile` of those latencies, so that many networks sit near it. Then a fresh
`Measurer` (the search's: more looks near the limit, the lowest kept) decides each network's
feasibility twice: on the quiet machine, and beside `--busy` processes that each keep a core
spinning. Beside the busy
processes each network is also timed once more with a single look, the way a limit was
decided before the second look. What it reports: the feasible sets, the networks they disagree
on, and whether each disagreement lies within the spread recorded beside its latency (its
quiet latency within `LATENCY_SPREADS` spreads, or `NEAR` of the limit), and
whether the busy warning fired beside the busy processes and not on the quiet machine.

Usage:
    python -m benchmarks.latency --archs 60 --busy 2 --threads 1
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from benchmarks.core.report import command
from hypernas.options import check, option

NEAR = 0.25  # a disagreement this close to the limit (a share of it) is within the noise: fixed before any run


@dataclass(frozen=True)
class Config:
    space: str = option("nb201", "the space whose architectures are timed")
    channels: int = option(8, "nb201's width C", low=1)
    cells: int = option(1, "nb201's cells per stage N", low=1)
    archs: int = option(60, "distinct architectures timed", low=1)
    length: int = option(40, "the input's length (MNIST-1D's: 1 channel of 40)", low=1)
    quantile: float = option(0.5, "the limit: this quantile of the quiet latencies", above=0, below=1)
    busy: int = option(os.cpu_count() or 1, "processes that keep a core busy during the second pass", low=1)
    threads: int = option(1, "torch CPU threads of the timing", low=1)
    seconds: float | None = option(None, "timed seconds per look, at least [default: hypernas.budget's]", above=0)
    seed: int = option(0, "seed of the architecture draws", low=0)

    def __post_init__(self):
        check(self)


@contextlib.contextmanager
def busy_machine(processes: int) -> Iterator[None]:
    """`processes` Python processes spinning, each on a core, until the block ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        time.sleep(0.5)  # let them reach the scheduler before anything is timed
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def _decide(measurer, infos: dict) -> tuple[dict, bool]:
    """hash -> (ms, spread_ms, looks, feasible) by the search's rule; whether it warned of a busy machine."""
    from hypernas.errors import HypernasWarning

    out = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", HypernasWarning)
        for key, info in infos.items():
            m = measurer.measure(info, key)
            out[key] = (m.latency_ms, m.attrs["latency_spread_ms"], m.attrs["latency_measurements"], m.feasible)
    return out, any("machine looks busy" in str(w.message) for w in caught)


def run(config: Config) -> dict:
    import torch

    from hypernas import budget
    from hypernas.graph import canonical_hash, validate
    from hypernas.spaces import get_space

    torch.set_num_threads(config.threads)
    if config.seconds is not None:  # a quick look, for its test
        budget.LATENCY_SECONDS = budget.LATENCY_MAX_SECONDS = config.seconds
    space = get_space(config.space)
    options = space.resolve_options({"channels": config.channels, "cells": config.cells} if config.space == "nb201"
                                    else {})
    graphs = space.sample_distinct(config.archs, config.seed, 1, 10, **options)
    infos = {canonical_hash(info): info for info in map(validate, graphs)}
    size = (config.length,)
    # the limit among the networks' floors (the lowest of as many looks as the search takes), so that
    # half of them sit above it however slow a single look happens to be
    calibration = {k: min(budget.time_latency(info, 1, size).ms for _ in range(budget.LATENCY_LOOKS))
                   for k, info in infos.items()}
    ordered = sorted(calibration.values())
    limit = ordered[min(len(ordered) - 1, int(config.quantile * len(ordered)))]
    limits = budget.Limits(max_latency=limit)
    quiet, quiet_warned = _decide(budget.Measurer(limits, ("score",), 1, size), infos)
    with busy_machine(config.busy):
        busy, busy_warned = _decide(budget.Measurer(limits, ("score",), 1, size), infos)
        one_look = {k: budget.time_latency(info, 1, size) for k, info in infos.items()}
    rows = []
    for k in infos:
        q, b, o = quiet[k], busy[k], one_look[k]
        spread = max(q[1], b[1])
        near = abs(q[0] - limit) <= max(budget.LATENCY_SPREADS * spread, NEAR * limit)
        rows.append({"hash": k, "quiet_ms": q[0], "quiet_spread_ms": q[1], "quiet_looks": q[2], "quiet_feasible": q[3],
                     "busy_ms": b[0], "busy_spread_ms": b[1], "busy_looks": b[2], "busy_feasible": b[3],
                     "one_look_ms": o.ms, "one_look_feasible": o.ms <= limit, "within_spread": near})
    return {"config": asdict(config), "limit_ms": limit, "rows": rows, "quiet_warned": quiet_warned,
            "busy_warned": busy_warned, "torch": torch.__version__, "cpus": os.cpu_count()}


def markdown(result: dict) -> str:
    c, rows, limit = result["config"], result["rows"], result["limit_ms"]
    n = len(rows)

    def count(key: str) -> int:
        return sum(r[key] for r in rows)

    differ = [r for r in rows if r["quiet_feasible"] != r["busy_feasible"]]
    differ_once = [r for r in rows if r["quiet_feasible"] != r["one_look_feasible"]]
    head = (f"Latency limit {limit:.4g} ms: the {c['quantile']:g} quantile of the quiet latencies of {n} distinct "
            f"{c['space']} architectures (C={c['channels']}, N={c['cells']}) on 1 channel of {c['length']}, "
            f"{c['threads']} thread(s), torch {result['torch']}, {result['cpus']} CPUs; the second pass beside "
            f"{c['busy']} busy process(es).")
    lines = [head, "",
             "| pass | feasible | differs from quiet | of those, within the recorded spread | busy warning |",
             "|---|---|---|---|---|",
             f"| quiet | {count('quiet_feasible')} of {n} | | | {'yes' if result['quiet_warned'] else 'no'} |",
             (f"| busy, the search's rule | {count('busy_feasible')} of {n} | {len(differ)} | "
              f"{sum(r['within_spread'] for r in differ)} | {'yes' if result['busy_warned'] else 'no'} |"),
             (f"| busy, one look | {count('one_look_feasible')} of {n} | {len(differ_once)} | "
              f"{sum(r['within_spread'] for r in differ_once)} | |"), ""]
    same = all(r["within_spread"] for r in differ)
    lines.append(f"Same feasible set within the recorded spread: {'yes' if same else 'no'}.")
    if differ:
        lines += ["", "| network | quiet ms (spread, looks) | busy ms (spread, looks) |", "|---|---|---|"]
        lines += [f"| {r['hash']} | {r['quiet_ms']:.4g} ({r['quiet_spread_ms']:.2g}, {r['quiet_looks']}) | "
                  f"{r['busy_ms']:.4g} ({r['busy_spread_ms']:.2g}, {r['busy_looks']}) |" for r in differ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.latency", doc=__doc__)


if __name__ == "__main__":
    main()
