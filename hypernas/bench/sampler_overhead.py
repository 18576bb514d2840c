"""How long a sampler takes to propose the trials of a long study, without any scoring.

The objective is a fixed pseudo-random value of NB201's six edge choices (a CRC of the cell),
so the seconds measured are the sampler's and Optuna's own: what a search spends besides
scoring. Each sampler runs N trials in one in-memory study; the samplers alternate in one
process, so their times compare.

Usage:
    hypernas bench sampler_overhead --trials 1000,2000,5000 --samplers random,local,evolution
"""

from __future__ import annotations

import argparse
import time
import zlib

import optuna

from hypernas.bench import report
from hypernas.samplers import make_sampler
from hypernas.spaces import get_space
from search_spaces import nb201


def objective(trial: optuna.Trial) -> float:
    """A fixed value per cell, unrelated to its structure: the sampler's work, not the objective's."""
    ops = [trial.suggest_categorical(f"edge_{i}_{j}", nb201.OPS) for i, j in nb201.EDGES]  # as nb201.suggest names them
    return zlib.crc32("|".join(ops).encode()) / 2**32


def seconds(sampler: str, trials: int, seed: int = 0) -> float:
    study = optuna.create_study(direction="maximize", sampler=make_sampler(sampler, seed, get_space("nb201")))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[tuple[str, int], float]:
    ap = argparse.ArgumentParser(prog="hypernas bench sampler_overhead", description=__doc__.split("\n")[0])
    ap.add_argument("--trials", default="1000,2000,5000", help="comma list of study lengths")
    ap.add_argument("--samplers", default="random,local,evolution", help="comma list of `hypernas search` samplers")
    ap.add_argument("--out-md")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lengths = [int(n) for n in args.trials.split(",")]
    samplers = args.samplers.split(",")
    out = {(s, n): seconds(s, n) for n in lengths for s in samplers}
    lines = ["| trials | " + " | ".join(f"{s} (s)" for s in samplers) + " |", "|---|" + "---|" * len(samplers)]
    lines += [f"| {n} | " + " | ".join(f"{out[s, n]:.1f}" for s in samplers) + " |" for n in lengths]
    report("\n".join(lines), args.out_md)
    return out


if __name__ == "__main__":
    main()
