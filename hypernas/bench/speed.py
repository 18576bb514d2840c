"""How fast scoring is, measured against a bare forward pass of the same networks.

Scoring time covers everything `Scorer.score` does for distinct architectures: hashing,
validation, encoding, the hypernetwork pass and the forward pass on the validation slice.
The baseline runs the same architectures, already compiled with ordinary stored weights,
forward on the same validation slice. The two alternate `--repeats` times in one run, and
the medians are reported. Peak memory is the process's maximum resident set size after
each phase, each phase run in a fresh subprocess so earlier phases do not hide it.

Usage:
    python -m hypernas.bench.speed --hypernet runs/ref/hypernet.pt --archs 1000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from hypernas.compile import compile_graph
from hypernas.data import load_dataset, load_dataset_like
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import FitConfig, fit_hypernet
from hypernas.score import Scorer
from hypernas.spaces import get_space


def time_scoring(path: str, n: int, repeats: int, samples: int = 1) -> dict:
    ckpt = load_checkpoint(path)
    data = load_dataset_like(ckpt["data"])
    graphs = get_space(ckpt["space"]).sample_distinct(n, 0, data.in_channels, data.num_classes, **ckpt["space_options"])
    models = [compile_graph(G, data.ndim).eval() for G in graphs]
    x = data.x_val
    score_s, forward_s = [], []
    for _ in range(repeats):
        scorer = Scorer.from_checkpoint(path, data, samples=samples)  # a fresh, empty cache
        start = time.perf_counter()
        scorer.score(graphs)
        score_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            for m in models:
                m(x)
        forward_s.append(time.perf_counter() - start)
    score, forward = statistics.median(score_s), statistics.median(forward_s)
    return {"space": ckpt["space"], "archs": n, "samples": samples, "val_samples": len(x),
            "score_seconds": score, "forward_seconds": forward, "archs_per_second": n / score,
            "ratio": score / forward, "ratios": [s / f for s, f in zip(score_s, forward_s)]}


def time_training(space_name: str, options: dict, steps: int) -> dict:
    data = load_dataset("mnist1d")
    config = FitConfig(steps=steps, warmup=1)
    fit_hypernet(space_name, options, data, FitConfig(steps=2, warmup=1), progress=False)  # warm-up
    start = time.perf_counter()
    fit_hypernet(space_name, options, data, config, progress=False)
    seconds = time.perf_counter() - start
    return {"space": space_name, "steps": steps, "meta_batch": config.meta_batch, "steps_per_second": steps / seconds}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _phase(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    if args.phase == "score":
        result = time_scoring(args.hypernet[0], args.archs, args.repeats, args.samples)
    else:
        result = time_training(args.space, json.loads(args.space_options), args.steps)
    return {**result, "peak_rss_mib": _peak_mib(), "threads": args.threads}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hypernet", action="append", default=[], help="checkpoint(s) to time scoring with")
    ap.add_argument("--archs", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--phase", choices=["score", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--space", help=argparse.SUPPRESS)
    ap.add_argument("--space-options", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.phase:  # a child process: one measurement, printed as JSON
        print(json.dumps(_phase(args)))
        return
    base = [sys.executable, "-m", "hypernas.bench.speed", "--threads", str(args.threads)]
    jobs = [base + ["--phase", "score", "--hypernet", p, "--archs", str(args.archs), "--repeats", str(args.repeats),
                    "--samples", str(args.samples)] for p in args.hypernet]
    jobs += [base + ["--phase", "train", "--space", s, "--space-options", json.dumps(o), "--steps", str(args.train_steps)]
             for s, o in (("nb201", {"channels": 8, "cells": 1}), ("macro", {}))] if args.train_steps else []
    for job in jobs:
        proc = subprocess.run(job, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"benchmark phase failed: {' '.join(job[3:])}\n{proc.stderr[-2000:]}")
        print(proc.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
