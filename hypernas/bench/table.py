"""The shipped ground-truth tables: architectures with their trained accuracy per seed.

Usage:
    table = read_table(DEFAULT_TABLE)
    table.mean, noise_ceiling(table)
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from dataclasses import dataclass

from scipy import stats

from hypernas.bench.ground_truth import DEFAULT_TABLE


@dataclass
class Table:
    archs: list[str]
    by_seed: dict[int, list[float]]  # seed -> accuracy per arch, in `archs` order

    @property
    def mean(self) -> list[float]:
        return [statistics.fmean(accs) for accs in zip(*self.by_seed.values())]

    def head(self, n: int | None) -> "Table":
        """The first `n` architectures (all of them for None)."""
        return Table(self.archs[:n], {s: accs[:n] for s, accs in self.by_seed.items()})


def read_table(path: str = DEFAULT_TABLE) -> Table:
    """The architectures that have every seed in the table, with their accuracies."""
    rows: dict[str, dict[int, float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[r["arch"]][int(r["seed"])] = float(r["test_accuracy"])
    seeds = sorted({s for accs in rows.values() for s in accs})
    archs = [a for a, accs in rows.items() if all(s in accs for s in seeds)]
    return Table(archs, {s: [rows[a][s] for a in archs] for s in seeds})


def noise_ceiling(table: Table) -> float:
    """Kendall tau between the first two seeds: how consistently a second training ranks."""
    a, b = list(table.by_seed.values())[:2]
    return float(stats.kendalltau(a, b).statistic)
