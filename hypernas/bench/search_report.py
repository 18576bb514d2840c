"""Report on a finished `hypernas search` study against the shipped ground-truth table.

It reads the study (trials, timing of the last search run, trained finalists) and compares
the finalists' true accuracy with the table: the best finalist against the table's best
mean accuracy, and the finalists' mean against the table's mean.

Usage:
    hypernas search --config studies/nb201_mnist1d.toml      # the README's main command
    python -m hypernas.bench.search_report --storage sqlite:///runs/hypernas/study.db --study hypernas
"""

from __future__ import annotations

import argparse
import json
import statistics

import optuna

from hypernas.bench.ground_truth import DEFAULT_TABLE
from hypernas.bench.table import read_table
from hypernas.study import load_study


def report(storage: str, study_name: str, table_path: str = DEFAULT_TABLE) -> dict:
    study = load_study(storage, study_name)
    complete = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
    finalists = [t.user_attrs["trained_accuracy"] for t in complete if "trained_accuracy" in t.user_attrs]
    timing = study.user_attrs.get("search_timing", {})
    table = read_table(table_path)
    total = timing.get("total") or float("nan")
    return {
        "trials": len(complete), "distinct": sum("duplicate_of" not in t.user_attrs for t in complete),
        "search_seconds": total,
        "fraction_scoring": timing.get("score", 0) / total, "fraction_sampler": timing.get("ask", 0) / total,
        "fraction_storage_and_bookkeeping": (timing.get("storage_wait", 0) + timing.get("bookkeeping", 0)) / total,
        "storage_writer_busy_seconds": timing.get("storage_busy"),
        "finalists": finalists, "best_finalist": max(finalists, default=None),
        "mean_finalists": statistics.fmean(finalists) if finalists else None,
        "table_best_mean": max(table.mean), "table_mean": statistics.fmean(table.mean),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storage", required=True)
    ap.add_argument("--study", required=True)
    ap.add_argument("--table", default=DEFAULT_TABLE)
    args = ap.parse_args(argv)
    print(json.dumps(report(args.storage, args.study, args.table), indent=1))


if __name__ == "__main__":
    main()
