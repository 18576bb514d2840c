"""Report on a finished `hypernas search` study against the shipped ground-truth table.

It reads the study (trials, timing of the last search run, trained finalists) and compares
the finalists' true accuracy with the table: the best finalist against the table's best
mean accuracy, and the finalists' mean against the table's mean.

Usage:
    hypernas search --config studies/nb201_mnist1d.toml      # the README's main command
    python -m benchmarks.search_report --study hypernas
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass

from benchmarks.core.report import command
from benchmarks.core.tables import merged_table
from benchmarks.core.truths import TRUTHS
from hypernas.config import sqlite_url
from hypernas.errors import OptionError
from hypernas.options import check, option
from hypernas.study import load_study
from hypernas.study.sync import FINISHED


@dataclass(frozen=True)
class Config:
    study: str | None = option(None, "the study's name (required)")
    storage: str | None = option(None, "its storage URL [default: the run directory's SQLite file]")
    runs: str = option("runs", "folder of run directories")
    truth: str = option("nb201_mnist1d", "the truth its finalists are compared with", choices=tuple(TRUTHS))

    def __post_init__(self):
        check(self)
        if not self.study:
            raise OptionError("--study is required")


def run(config: Config) -> dict:
    storage = config.storage or sqlite_url(os.path.join(config.runs, config.study))
    study = load_study(storage, config.study, read_only=True)
    finished = study.get_trials(deepcopy=False, states=FINISHED)  # a duplicate or a trial over a limit is PRUNED
    finalists = [t.user_attrs["trained_accuracy"] for t in finished if "trained_accuracy" in t.user_attrs]
    timing = study.user_attrs.get("search_timing", {})
    table = merged_table(TRUTHS[config.truth].tables)
    total = timing.get("total") or float("nan")
    return {
        "trials": len(finished), "distinct": sum("duplicate_of" not in t.user_attrs for t in finished),
        "infeasible": sum(not t.user_attrs.get("feasible", True) for t in finished), "search_seconds": total,
        # the sampler's own seconds; "ask" also builds the networks it was asked for (older studies: ask only)
        "fraction_scoring": timing.get("score", 0) / total,
        "fraction_sampler": timing.get("sampler", timing.get("ask", 0)) / total,
        "fraction_storage_and_bookkeeping": (timing.get("storage_wait", 0) + timing.get("bookkeeping", 0)) / total,
        "storage_writer_busy_seconds": timing.get("storage_busy"),
        "finalists": finalists, "best_finalist": max(finalists, default=None),
        "mean_finalists": statistics.fmean(finalists) if finalists else None,
        "table_best_mean": max(table.mean), "table_mean": statistics.fmean(table.mean),
    }


def markdown(result: dict) -> str:
    return json.dumps(result, indent=1)


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.search_report", doc=__doc__)


if __name__ == "__main__":
    main()
