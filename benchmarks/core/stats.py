"""Every statistic the benchmarks report, with one convention each: rank agreement, intervals, noise.

- `kendall_tau`, `spearman_rho`: scipy's tau-b and rho. A constant side (a scorer that gives
  every architecture the same value, or a budget whose truth is flat) ranks nothing: 0.0, never NaN.
- `paired_bootstrap`: the 95% interval of a difference between two scorers judged on the same
  architectures, resampling the architectures (and the hypernetwork runs, where there are
  several) with replacement, both scorers on the same resample. Its `verdict` says "ahead",
  "within noise" or "behind".
- `seed_to_seed_tau`, `noise_ceiling`, `truth_noise`: how noisy a truth table is.

Usage:
    diff = paired_bootstrap(lambda cells, runs: gap(b, cells) - gap(a, cells), n_archs)
    print(diff, diff.verdict())        # "+0.0012 [-0.0004, +0.0031]", "within noise"
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 1000  # bootstrap resamples: the interval's ends move by about 0.1 sd between seeds
CONFIDENCE = 0.95


def _defined(value: float) -> float:
    return 0.0 if math.isnan(value) else float(value)


def _quietly(fn, a, b) -> float:
    if len(a) < 2:
        return 0.0
    with warnings.catch_warnings():  # scipy warns of a constant side, which is the case handled
        warnings.simplefilter("ignore")
        return _defined(fn(a, b).statistic)


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two equally long sequences; 0.0 where either side is constant."""
    return _quietly(stats.kendalltau, a, b)


def spearman_rho(a, b) -> float:
    """Spearman's rho; 0.0 where either side is constant."""
    return _quietly(stats.spearmanr, a, b)


def ranking_metrics(scores, truth, top_fraction: float = 0.1) -> dict[str, float]:
    """Kendall tau, Spearman rho, precision at the top fraction, and the true value of the top-1
    pick. Higher scores mean better architectures; ties in the score pick the first. Precision
    at the top: the share of the scorer's top fraction that is in the true top fraction."""
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    if len(s) != len(t) or len(s) < 2:
        raise ValueError(f"need two equally long lists of at least 2 values, got {len(s)} and {len(t)}")
    k = max(1, int(round(len(s) * top_fraction)))
    top_pred = set(np.argsort(-s, kind="stable")[:k])
    top_true = set(np.argsort(-t, kind="stable")[:k])
    return {"kendall_tau": kendall_tau(s, t), "spearman_rho": spearman_rho(s, t),
            "precision_at_top": len(top_pred & top_true) / k, "top1_true": float(t[int(np.argmax(s))])}


@dataclass(frozen=True)
class Interval:
    """A difference as measured, and the 95% bootstrap interval around it."""

    estimate: float
    low: float
    high: float

    def verdict(self, higher_is_better: bool = True) -> str:
        """"ahead" where the whole interval favours the first side, "behind" where it favours
        the second, "within noise" where it holds zero."""
        if self.low > 0 or self.high < 0:
            return "ahead" if (self.low > 0) == higher_is_better else "behind"
        return "within noise"

    def format(self, places: int = 4) -> str:
        return f"{self.estimate:+.{places}f} [{self.low:+.{places}f}, {self.high:+.{places}f}]"

    def __str__(self) -> str:
        return self.format()


def bootstrap(statistics: Callable[[np.ndarray, np.ndarray], dict[str, float]], cells: int, runs: int = 1, *,
              resamples: int = RESAMPLES, seed: int = 0, estimate: dict[str, float] | None = None) -> dict[str, Interval]:
    """The 95% intervals of several statistics of one paired resampling: `statistics(cell_indices,
    run_indices)` is evaluated once on every cell and run for the estimates (unless `estimate`
    gives them, computed more exactly), then on `resamples` draws with replacement of the cells
    (architectures) and of the runs (hypernetwork trainings), every statistic on the same draw.
    A statistic that is a difference of two scorers is then a paired comparison. Percentile
    intervals: a skewed statistic (a best-of-k) may put its estimate near an end.

    Written here because `scipy.stats.bootstrap` resamples one index for all its samples: it
    has no second, independent level (the hypernetwork runs beside the architectures)."""
    rng = np.random.default_rng(seed)
    estimates = estimate if estimate is not None else statistics(np.arange(cells), np.arange(runs))
    draws = [statistics(rng.integers(0, cells, cells), rng.integers(0, runs, runs)) for _ in range(resamples)]
    out = {}
    for key, value in estimates.items():
        low, high = np.quantile([d[key] for d in draws], [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        out[key] = Interval(float(value), float(low), float(high))
    return out


def paired_bootstrap(difference: Callable[[np.ndarray, np.ndarray], float], cells: int, runs: int = 1, *,
                     resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The interval of one difference, `difference(cell_indices, run_indices)` (`bootstrap`)."""
    return bootstrap(lambda c, r: {"d": difference(c, r)}, cells, runs, resamples=resamples, seed=seed)["d"]


def seed_to_seed_tau(by_seed: dict[int, list[float]]) -> float:
    """Kendall tau between the first two seeds: how consistently a second training ranks."""
    a, b = list(by_seed.values())[:2]
    return kendall_tau(a, b)


def noise_ceiling(by_seed: dict[int, list[float]], splits: int = 20, seed: int = 0) -> float | None:
    """The Kendall tau against the table's mean of a scorer that knew each architecture's
    expected accuracy: the most any scorer can reach on this truth (None with one seed).

    Split-half: the seeds are split in two halves, the tau between the halves' means turned into
    a correlation by Greiner's relation (r = sin(pi tau / 2), exact for Gaussian scores), that
    correlation stepped up to all seeds by Spearman-Brown (the reliability R of the full mean),
    and the ceiling is the tau of a correlation sqrt(R), the full mean's with the expectation.
    Rank-based, so a few dead networks at chance do not inflate it as they would a Pearson r.
    """
    seeds = sorted(by_seed)
    n, half = len(seeds), len(seeds) // 2
    if n < 2:
        return None
    acc = np.array([by_seed[s] for s in seeds])  # (seeds, archs)
    rng = np.random.default_rng(seed)
    every = list(itertools.combinations(range(n), half))
    chosen = every if len(every) <= splits else [every[i] for i in rng.choice(len(every), splits, replace=False)]
    correlations = []
    for a in chosen:
        b = [i for i in range(n) if i not in a][:half]  # an odd seed out: both halves of `half` seeds
        correlations.append(math.sin(math.pi * kendall_tau(acc[list(a)].mean(0), acc[b].mean(0)) / 2))
    r_half = max(float(np.mean(correlations)), 0.0)
    per_seed = r_half / (half - (half - 1) * r_half) if r_half < 1 else 1.0  # Spearman-Brown, down to one seed
    reliability = n * per_seed / (1 + (n - 1) * per_seed)
    return 2 / math.pi * math.asin(math.sqrt(reliability))


@dataclass(frozen=True)
class TruthNoise:
    """How noisy a truth is where it matters: in the top half of its architectures by mean."""

    seeds: int
    spread: float  # sd of the top half's means
    one_run: float  # pooled sd of one training run there
    top_mean: float  # the top half's mean accuracy

    @property
    def noise_of_mean(self) -> float:
        """The noise (sd) of one architecture's mean over the table's seeds."""
        return self.one_run / math.sqrt(self.seeds)

    @property
    def ratio(self) -> float:
        return self.noise_of_mean / self.spread if self.spread > 0 else math.inf

    @property
    def seeds_needed(self) -> int | None:
        """The seeds at which the noise of a mean would be half the spread of the means, with
        the same between-architecture spread (None where none is left after the noise)."""
        between = self.spread**2 - self.one_run**2 / self.seeds
        return math.ceil(3 * self.one_run**2 / between) if between > 0 else None


def truth_noise(by_seed: dict[int, list[float]]) -> TruthNoise:
    """The noise of a table of accuracies (seed -> one value per architecture), top half by mean."""
    acc = np.array(list(by_seed.values())).T  # (archs, seeds)
    if acc.shape[1] < 2:
        raise ValueError("a truth's noise needs at least two seeds of each architecture")
    mean = acc.mean(1)
    top = mean >= np.median(mean)
    return TruthNoise(acc.shape[1], float(mean[top].std(ddof=1)), float(math.sqrt(acc[top].var(1, ddof=1).mean())),
                      float(mean[top].mean()))
