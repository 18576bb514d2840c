"""`python -m benchmarks.sampler_overhead`: a sampler's own seconds per trial, as a search uses it, against the study's length.

For each sampler and each study length N, a study in SQLite that already holds N finished
trials is resumed by `hypernas.loop.search_loop`, the loop `hypernas search` runs, for
`--asks` more trials, asked in batches of `--trial-batch`. The space is NB201 at C=8, N=1; the
scorer is a stand-in that costs next to nothing (a network's score is a fixed pseudo-random
value of its hash), so what is measured is the search's own machinery. Reported per trial: the
sampler's own seconds (its methods, timed by `hypernas.samplers.TimedSampler`), of which its
CPU time (the rest is waiting for the interpreter lock that the loop's background storage
writer holds), and the rest of the loop (building the networks, hashing, telling, writing).

The N finished trials come from the random sampler through the same loop (built once per
objective set and copied for each row), so every row resumes the same study. With
`--objectives score,params` the rows are multi-objective.

Usage:
    python -m benchmarks.sampler_overhead --samplers tpe,nsga2,random,local,evolution --out-md runs/so.md
    python -m benchmarks.sampler_overhead --samplers gp --asks 4 --trial-batch 4      # GP refits at every trial
    python -m benchmarks.sampler_overhead --samplers tpe,nsga2 --objectives score,params
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass

import optuna

from benchmarks.core.report import command, table
from hypernas import loop
from hypernas.config import SearchConfig, sqlite_url
from hypernas.graph import GraphInfo, param_count
from hypernas.options import check, option
from hypernas.samplers import SAMPLERS, check_objectives
from hypernas.score import NetworkScorer, Score
from hypernas.spaces import get_space
from hypernas.study.storage import open_storage

OPTIONS = {"channels": 8, "cells": 1}
LOOP_STEPS = ("ask", "score", "bookkeeping", "storage_wait")  # the search loop's per-batch steps (ask holds the sampler)


class StandInScorer(NetworkScorer):
    """A scorer for timing the loop around it: a fixed pseudo-random score per network."""

    def score(self, infos: list[GraphInfo], keys: list[str]) -> list[Score]:
        out = []
        for info, key in zip(infos, keys):
            value = zlib.crc32(key.encode()) / 2**32
            out.append(Score(hash=key, score=value, score_std=0.0, accuracy=value, accuracy_std=0.0, loss=0.0,
                             loss_std=0.0, params=param_count(info, 1), flops=0, degenerate=info.degenerate, samples=1))
        return out


@dataclass(frozen=True)
class Config:
    samplers: tuple[str, ...] = option(("tpe", "nsga2", "random", "local", "evolution"), "samplers, one row each",
                                       choices=tuple(SAMPLERS))
    trials: tuple[int, ...] = option((1000, 5000, 10000), "study lengths N the rows resume at")
    asks: int = option(320, "trials asked and timed per row (the resume's first look at the study is among them)",
                       low=1)
    trial_batch: int = option(64, "trials asked together, as `hypernas search --trial-batch`", low=1)
    objectives: tuple[str, ...] = option(("score",), "the study's objectives (score,params for multi-objective rows)",
                                         choices=("score", "params"))

    def __post_init__(self):
        check(self)
        for sampler in self.samplers:
            check_objectives(sampler, len(self.objectives))


def resume(config: Config, sampler: str, trials: int, folder: str, stale_trials: float = loop.STALE_TRIALS
           ) -> dict[str, float]:
    """The search loop on the study in `folder/study.db`, from where it stands to `trials`; seconds per step."""
    cfg = SearchConfig(space="nb201", space_options=OPTIONS, sampler=sampler, trials=trials, trial_batch=config.trial_batch,
                       objectives=config.objectives, top_k=0)
    directions = ["maximize"] + ["minimize"] * (len(config.objectives) - 1)
    study = optuna.create_study(storage=open_storage(sqlite_url(folder)), study_name="study", directions=directions,
                                load_if_exists=True)
    return loop.search_loop(cfg, study, get_space("nb201"), OPTIONS, 1, 10, StandInScorer(), progress=False,
                              stale_trials=stale_trials)


def run(config: Config) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hypernas-sampler-overhead-") as folder:
        grown, at = os.path.join(folder, "grown"), {}
        for n in sorted(config.trials):  # one study grown by the random sampler, kept at each length
            # never stopped by a run of duplicates: NB201 at this size has about 5,400 distinct networks, so
            # a study of 10,000 trials is mostly duplicates (as a long search of it is), met 2,000 in a row early
            resume(config, "random", n, grown, stale_trials=math.inf)
            at[n] = shutil.copy(os.path.join(grown, "study.db"), os.path.join(folder, f"at{n}.db"))
        for n in config.trials:
            for sampler in config.samplers:
                row = os.path.join(folder, f"{sampler}-{n}")
                os.makedirs(row)
                shutil.copy(at[n], os.path.join(row, "study.db"))
                start = time.perf_counter()
                timing = resume(config, sampler, n + config.asks, row)
                loop = sum(timing[k] for k in LOOP_STEPS)  # per batch; the resume's one-time load is left out
                rows.append({"sampler": sampler, "trials": n, "sampler_seconds": timing["sampler"] / config.asks,
                             "sampler_cpu": timing["sampler_cpu"] / config.asks,
                             "rest_seconds": (loop - timing["sampler"]) / config.asks,
                             "wall": time.perf_counter() - start})
    return {"config": config, "rows": rows}


def markdown(result: dict) -> str:
    c = result["config"]
    lines = [f"NB201 (C=8, N=1), objectives {','.join(c.objectives)}; each row resumes a SQLite study of N trials "
             f"for {c.asks} more, asked in batches of {c.trial_batch}, scored by a stand-in that costs nothing. "
             "Seconds per trial: the sampler's own, and the rest of the loop.", ""]
    return "\n".join(lines + table(["sampler", "trials N", "sampler s/trial", "of which its CPU", "rest of the loop s/trial",
                                    "row wall s"],
                                   [[r["sampler"], f"{r['trials']:,}", f"{r['sampler_seconds']:.4f}", f"{r['sampler_cpu']:.4f}",
                                     f"{r['rest_seconds']:.4f}", f"{r['wall']:.0f}"] for r in result["rows"]]))


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.sampler_overhead", doc=__doc__)


if __name__ == "__main__":
    main()
