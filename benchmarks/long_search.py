"""`python -m benchmarks.long_search`: the README's search at many more trials, timed by phase.

The README's main configuration (`studies/nb201_mnist1d.toml`) with `--trials` (10,000 by
default) and a trained hypernetwork given (`--hypernet`, e.g. the one the README's command
trained), on a fresh study in a temporary folder, without the final stage: the search phase
alone. Reported: its seconds, split into the sampler's own time, scoring, the rest of the loop
(building, hashing, telling) and waiting for the storage, and the sampler's share; and the
sampler's own CPU time, without the waits for the interpreter lock that the background
storage writer holds.

Usage:
    python -m benchmarks.long_search --hypernet runs/hypernas/hypernet.pt --threads 2 --out-md runs/long_search.md
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass

from benchmarks.core.report import command, table
from hypernas.config import load_search_config
from hypernas.errors import OptionError
from hypernas.options import check, option
from hypernas.search import run_search

README_CONFIG = os.path.join(os.path.dirname(os.path.dirname(__file__)), "studies", "nb201_mnist1d.toml")


@dataclass(frozen=True)
class Config:
    hypernet: str | None = option(None, "a hypernetwork trained with the README's configuration (required)")
    trials: int = option(10000, "trials to search", low=1)
    config: str = option(README_CONFIG, "the study config searched")
    threads: int = option(2, "torch threads", low=1)

    def __post_init__(self):
        check(self)
        if not self.hypernet:
            raise OptionError("--hypernet is required: the search phase is timed without training one")


def run(config: Config) -> dict:
    import torch

    torch.set_num_threads(config.threads)
    with tempfile.TemporaryDirectory(prefix="hypernas-long-search-") as runs:
        cfg = load_search_config(config.config, {"trials": config.trials, "hypernet": config.hypernet, "top_k": 0,
                                                 "runs": runs, "study": "long"})
        start = time.perf_counter()
        result = run_search(cfg, progress=True)
        wall = time.perf_counter() - start
    t = result.timing
    phases = {"sampler": t["sampler"], "scoring": t["score"], "rest of the loop": t["ask"] - t["sampler"] + t["bookkeeping"],
              "waiting for the storage": t["storage_wait"]}
    return {"config": config, "phases": phases, "search": t["total"], "wall": wall, "sampler_cpu": t["sampler_cpu"],
            "trials": len(result.study.get_trials(deepcopy=False))}


def markdown(result: dict) -> str:
    c, search = result["config"], result["search"]
    rows = [[name, f"{s:.1f}", f"{100 * s / search:.1f}%"] for name, s in result["phases"].items()]
    rows.append(["search phase", f"{search:.1f}", "100%"])
    rows.insert(1, ["sampler, its own CPU time (the rest of its seconds wait for the interpreter lock or a core)",
                    f"{result['sampler_cpu']:.1f}", f"{100 * result['sampler_cpu'] / search:.1f}%"])
    return "\n".join([f"`{os.path.relpath(c.config)}` at {c.trials:,} trials, hypernetwork `{c.hypernet}` given, "
                      f"{c.threads} torch thread(s); {result['trials']:,} trials stored. The command took "
                      f"{result['wall']:.0f} s with data loading and set-up.", "",
                      *table(["phase", "seconds", "share of the search phase"], rows)])


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.long_search", doc=__doc__)


if __name__ == "__main__":
    main()
