"""Search throughput with several workers on one study: SQLite with 1, PostgreSQL with 1, 2, 3.

Each setting starts N `hypernas search` processes on a fresh study, all with the same
command (a shared, already trained hypernetwork, no final training), and waits for them.
Throughput is trials / search-phase seconds, the span from the first trial's start to the
last trial's end as the study records them, so process start-up is left out; the wall
time of the whole command, start-up included, is reported beside it.

Usage:
    python -m benchmarks.workers --postgres postgresql+psycopg://user:pw@127.0.0.1/db --trials 600
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

from benchmarks.core.report import command, table
from hypernas.config import FitConfig
from hypernas.data import load_dataset
from hypernas.errors import OptionError
from hypernas.ghn.fit import fit_hypernet
from hypernas.options import check, option
from hypernas.spaces import get_space
from hypernas.study import load_study, redact

SPACE = ["--space", "nb201", "--channels", "8", "--cells", "1"]


def run_setting(url: str, workers: int, trials: int, hypernet: str, runs: str, batch: int, threads: int) -> dict:
    study = f"throughput-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "hypernas.cli", "search", *SPACE, "--storage", url, "--study", study, "--runs", runs,
           "--trials", str(trials), "--trial-batch", str(batch), "--hypernet", hypernet, "--top-k", "0",
           "--threads", str(threads)]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(workers)]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(f"a worker failed: {err[-2000:]}")
    wall = time.perf_counter() - start
    trials_done = load_study(url, study).get_trials(deepcopy=False)
    span = (max(t.datetime_complete for t in trials_done) - min(t.datetime_start for t in trials_done)).total_seconds()
    return {"storage": url.split(":", 1)[0].split("+")[0], "workers": workers, "trials": len(trials_done),
            "search_seconds": span, "trials_per_second": len(trials_done) / span, "wall_seconds": wall}


@dataclass(frozen=True)
class Config:
    postgres: str | None = option(None, "a PostgreSQL URL whose user may create tables (required)")
    trials: int = option(600, "trials per setting", low=1)
    trial_batch: int = option(64, "trials asked and scored together", low=1)
    threads: int = option(1, "torch threads per worker", low=1)
    workers: tuple[int, ...] = option((1, 2, 3), "worker counts on PostgreSQL")

    def __post_init__(self):
        check(self)
        if not self.postgres:
            raise OptionError("--postgres is required: the PostgreSQL URL the workers share")


def run(config: Config) -> dict:
    with tempfile.TemporaryDirectory() as runs:
        hypernet = os.path.join(runs, "hypernet.pt")  # throughput does not depend on how well it is trained
        fit_hypernet(get_space("nb201"), {"channels": 8, "cells": 1}, load_dataset("mnist1d"), FitConfig(steps=20),
                     out=hypernet, progress=False)
        args = (config.trials, hypernet, runs, config.trial_batch, config.threads)
        rows = [run_setting(f"sqlite:///{runs}/study.db", 1, *args)]
        rows += [run_setting(config.postgres, n, *args) for n in config.workers]
    return {"rows": rows, "config": config}


def markdown(result: dict) -> str:
    c = result["config"]
    return "\n".join([f"{c.trials} trials per setting, nb201 C=8 N=1, trial batch {c.trial_batch}, {c.threads} torch "
                      f"thread(s) per worker, {os.cpu_count()} CPU cores; PostgreSQL at {redact(c.postgres)}.", "",
                      *table(["storage", "workers", "trials", "search s", "trials/s", "wall s (with start-up)"],
                             [[r["storage"], r["workers"], r["trials"], f"{r['search_seconds']:.1f}",
                               f"{r['trials_per_second']:.1f}", f"{r['wall_seconds']:.1f}"] for r in result["rows"]])])


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.workers", doc=__doc__)


if __name__ == "__main__":
    main()
