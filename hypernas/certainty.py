"""How sure the final stage is: an interval for each finalist's trained accuracy, who is tied with the best, and the pick among them.

One training run's accuracy is noisy: near the top, the seed moves it as much as the
architecture does. So every finalist's accuracy carries a 95% interval:
- where some finalist was trained more than once (`--final-seeds`, racing), from the seeds:
  the finalist's mean +- t x the pooled sd of one run over the finalists / sqrt(its runs);
  pooling, because the finalists share the protocol and a run's noise, and two runs alone
  would give a t of 12.7;
- otherwise the Wilson interval of its test accuracy, which covers the test sample only, not
  the training seed, and says so.
A finalist is tied with the best (the highest mean) where their intervals overlap. Among the
tied, the pick follows `--final-pick`: the smallest, the fastest, or the highest score.

Usage:
    intervals = accuracy_intervals([[0.962, 0.960], [0.958, 0.961]], test_samples=1000)
    tied = tied_with_best(intervals)
    said = settle([[0.962, 0.960], [0.958, 0.961]], 1000, "smallest", [5000, 3000], None, [0.5, 0.4])
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PICKS = ("smallest", "fastest", "score")  # the rule among finalists tied with the best
CONFIDENCE = 0.95


@dataclass(frozen=True)
class AccuracyInterval:
    mean: float
    low: float
    high: float
    runs: int
    kind: str  # "seeds": over training runs; "test sample": the test set's Wilson interval only

    def overlaps(self, other: "AccuracyInterval") -> bool:
        return bool(self.low <= other.high and other.low <= self.high)

    def describe(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


def pooled_sd(runs: Sequence[Sequence[float]]) -> tuple[float, int] | None:
    """(the pooled sd of one run, its degrees of freedom) over groups of runs; None without any
    group of two runs or more."""
    df = sum(len(r) - 1 for r in runs if len(r) > 1)
    if df == 0:
        return None
    squares = sum((len(r) - 1) * statistics.variance(r) for r in runs if len(r) > 1)
    return math.sqrt(squares / df), df


def wilson(accuracy: float, samples: int) -> tuple[float, float]:
    """The Wilson interval of an accuracy measured on `samples` test samples."""
    from scipy.stats import binomtest

    ci = binomtest(round(accuracy * samples), samples).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy_intervals(runs: Sequence[Sequence[float]], test_samples: int) -> list[AccuracyInterval]:
    """One interval per finalist from its runs' accuracies (see the module's docstring)."""
    from scipy.stats import t as student

    pooled = pooled_sd(runs)
    out = []
    for r in runs:
        mean = statistics.fmean(r)
        if pooled is None:
            low, high = wilson(mean, test_samples)
            out.append(AccuracyInterval(mean, low, high, len(r), "test sample"))
        else:
            sd, df = pooled
            half = float(student.ppf((1 + CONFIDENCE) / 2, df)) * sd / math.sqrt(len(r))
            out.append(AccuracyInterval(mean, max(0.0, mean - half), min(1.0, mean + half), len(r), "seeds"))
    return out


def tied_with_best(intervals: Sequence[AccuracyInterval]) -> list[bool]:
    """Whether each finalist's interval overlaps that of the best mean (the best itself included)."""
    best = max(range(len(intervals)), key=lambda i: (intervals[i].mean, -i))
    return [iv.overlaps(intervals[best]) for iv in intervals]


def pick(tied: Sequence[int], rule: str, params: Sequence[float], latency: Callable[[int], float],
         scores: Sequence[float]) -> int:
    """The finalist the rule picks among the tied ones (indices): the fewest parameters, the
    lowest latency (measured on demand), or the highest score; ties by the given order."""
    if rule not in PICKS:
        raise ValueError(f"the pick among tied finalists is one of {', '.join(PICKS)}, not {rule!r}")
    key = {"smallest": lambda i: params[i], "fastest": latency, "score": lambda i: -scores[i]}[rule]
    return min(tied, key=lambda i: (key(i), list(tied).index(i)))


def race(runs: list[list[float]], budget: int, train_more: Callable[[int], float], test_samples: int) -> int:
    """Spend up to `budget` extra trainings on the finalists whose interval overlaps the leader's,
    one at a time to the one with the fewest runs among them and the leader, until the leader
    stands alone or the budget is spent. `runs` grows in place; returns the trainings spent."""
    spent = 0
    while spent < budget:
        intervals = accuracy_intervals(runs, test_samples)
        tied = tied_with_best(intervals)
        if sum(tied) <= 1:
            break
        contenders = [i for i, t in enumerate(tied) if t]
        chosen = min(contenders, key=lambda i: (len(runs[i]), i))
        runs[chosen].append(train_more(chosen))
        spent += 1
    return spent


@dataclass(frozen=True)
class Settled:
    """What the final stage concluded: each finalist's interval, whether it is tied with the
    best, the best mean's index and the pick among the tied by `rule`."""

    intervals: list[AccuracyInterval]
    tied: list[bool]
    best: int
    picked: int
    rule: str


def settle(runs: Sequence[Sequence[float]], test_samples: int, rule: str, params: Sequence[float],
           latency: Callable[[int], float] | None, scores: Sequence[float]) -> Settled:
    """The intervals of the finalists' runs, who is tied with the best, and the pick among the
    tied (`pick`); `latency` is needed for the rule `fastest` only."""
    intervals = accuracy_intervals(runs, test_samples)
    tied = tied_with_best(intervals)
    best = max(range(len(intervals)), key=lambda i: (intervals[i].mean, -i))
    chosen = pick([i for i, t in enumerate(tied) if t], rule, params, latency or (lambda i: 0.0), scores)
    return Settled(intervals, tied, best, chosen, rule)
