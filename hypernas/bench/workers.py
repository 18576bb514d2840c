"""Search throughput with several workers on one study: SQLite with 1, PostgreSQL with 1, 2, 3.

Each setting starts N `hypernas search` processes on a fresh study, all with the same
command (a shared, already trained hypernetwork, no final training), and waits for them.
Throughput is trials / search-phase seconds, the span from the first trial's start to the
last trial's end as the study records them, so process start-up is left out; the wall
time of the whole command, start-up included, is reported beside it.

Usage:
    python -m hypernas.bench.workers --postgres postgresql+psycopg://user:pw@127.0.0.1/db --trials 600
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid

from hypernas.bench import report
from hypernas.config import FitConfig
from hypernas.data import load_dataset
from hypernas.ghn.fit import fit_hypernet
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


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="hypernas bench workers", description=__doc__.split("\n")[0])
    ap.add_argument("--postgres", required=True, help="a PostgreSQL URL whose user may create tables")
    ap.add_argument("--trials", type=int, default=600)
    ap.add_argument("--trial-batch", type=int, default=64, help="trials asked and scored together")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--workers", default="1,2,3")
    ap.add_argument("--out-md")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as runs:
        hypernet = os.path.join(runs, "hypernet.pt")  # throughput does not depend on how well it is trained
        fit_hypernet(get_space("nb201"), {"channels": 8, "cells": 1}, load_dataset("mnist1d"), FitConfig(steps=20), out=hypernet,
                     progress=False)
        rows = [run_setting(f"sqlite:///{runs}/study.db", 1, args.trials, hypernet, runs, args.trial_batch, args.threads)]
        for n in map(int, args.workers.split(",")):
            rows.append(run_setting(args.postgres, n, args.trials, hypernet, runs, args.trial_batch, args.threads))
    lines = [f"{args.trials} trials per setting, nb201 C=8 N=1, trial batch {args.trial_batch}, {args.threads} torch thread(s) per "
             f"worker, {os.cpu_count()} CPU cores; PostgreSQL at {redact(args.postgres)}.", "",
             "| storage | workers | trials | search s | trials/s | wall s (with start-up) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['storage']} | {r['workers']} | {r['trials']} | {r['search_seconds']:.1f} | "
                     f"{r['trials_per_second']:.1f} | {r['wall_seconds']:.1f} |")
    text = "\n".join(lines)
    report(text, args.out_md)
    return rows


if __name__ == "__main__":
    main()
