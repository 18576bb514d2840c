"""How long a sampler takes to propose the trials of a long study, without any scoring.

The objective is a fixed pseudo-random value of NB201's six edge choices (a CRC of the cell),
so the seconds measured are the sampler's and Optuna's own: what a search spends besides
scoring. Each sampler runs N trials in one in-memory study; the samplers alternate in one
process, so their times compare.

Usage:
    python -m benchmarks.sampler_overhead --trials 1000,2000,5000 --samplers random,local,evolution
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import optuna

from benchmarks.core.report import command, table
from hypernas.options import check, option
from hypernas.samplers import SAMPLERS, make_sampler
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


@dataclass(frozen=True)
class Config:
    trials: tuple[int, ...] = option((1000, 2000, 5000), "study lengths")
    samplers: tuple[str, ...] = option(("random", "local", "evolution"), "`hypernas search` samplers",
                                       choices=tuple(SAMPLERS))

    def __post_init__(self):
        check(self)


def run(config: Config) -> dict:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return {"config": config, "seconds": {(s, n): seconds(s, n) for n in config.trials for s in config.samplers}}


def markdown(result: dict) -> str:
    c, out = result["config"], result["seconds"]
    return "\n".join(table(["trials", *(f"{s} (s)" for s in c.samplers)],
                           [[n, *(f"{out[s, n]:.1f}" for s in c.samplers)] for n in c.trials]))


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.sampler_overhead", doc=__doc__)


if __name__ == "__main__":
    main()
