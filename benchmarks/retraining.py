"""`python -m benchmarks.retraining`: how well more training runs rank a truth's architectures.

A truth's mean is noisy, so no scorer ranks it perfectly. This bench measures how far a scorer
can get in practice: some of a table's seeds (`--truth-seeds`, 0 and 1 by default) are the
truth, and the others, the same architectures trained again on the same protocol, are the
scorers: one run alone and the mean of two, three or four runs, against that truth. The mean
of several runs estimates each architecture's expected accuracy, which is the most any scorer
that does not see the truth's seeds can know.

Each row is every combination of k of the other seeds, with the mean and the range of its
metrics over the combinations. From the rows, `perfect_scorer_tau` extrapolates to k -> infinity:
the tau of a scorer that knows every architecture's expected accuracy, the ceiling of any
scorer, with a 95% bootstrap interval over the architectures. The split-half estimate of the
same ceiling (`benchmarks.core.stats.noise_ceiling`, what every other bench prints) is beside it.

Usage:
    python -m benchmarks.retraining --out-md runs/retraining.md
    python -m benchmarks.retraining --truth nb201_mnist1d_dev
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from benchmarks.core.report import command
from benchmarks.core.stats import noise_ceiling, ranking_metrics, seed_to_seed_tau
from benchmarks.core.tables import Table, merged_table
from benchmarks.core.truths import TRUTHS
from hypernas.errors import HypernasError
from hypernas.options import check, option

METRICS = ("kendall_tau", "spearman_rho", "precision_at_top", "top1_true")
SIZES = (1, 2, 3, 4)  # how many extra runs are averaged, per row
MAX_COMBINATIONS = 20  # of k extra seeds, per row


def retraining_rows(truth: Table, extra: Table, sizes: tuple[int, ...] = SIZES) -> list[dict]:
    """Per k in `sizes`: the metrics of the mean of k extra runs against `truth`'s mean accuracy,
    over every combination of k extra seeds ({"runs": k, "combinations": n, metric: (mean, min, max)})."""
    return rows_of_runs(truth.mean, aligned_runs(truth, extra), sizes)


def aligned_runs(truth: Table, extra: Table) -> dict[int, list[float]]:
    """The extra runs' accuracies per seed, in the order of `truth`'s cells."""
    position = {a: i for i, a in enumerate(extra.archs)}
    missing = [a for a in truth.archs if a not in position]
    if missing:
        raise HypernasError(f"the extra runs lack {len(missing)} of the table's {len(truth.archs)} cells, "
                            f"e.g. {missing[0]}; train them with the ground-truth script first")
    overlap = set(extra.by_seed) & set(truth.by_seed)
    if overlap:  # a seed in both would score the truth with itself
        raise HypernasError(f"seeds {sorted(overlap)} are in both tables; the extra runs need seeds of their own")
    return {s: [accs[position[a]] for a in truth.archs] for s, accs in extra.by_seed.items()}


def rows_of_runs(truth: list[float], by_seed: dict[int, list[float]], sizes: tuple[int, ...]) -> list[dict]:
    rows = []
    for k in sizes:
        if k > len(by_seed):
            continue
        combinations = list(itertools.combinations(sorted(by_seed), k))
        if len(combinations) > MAX_COMBINATIONS:  # many seeds: a fixed random subset says the same
            picked = np.random.default_rng(0).choice(len(combinations), MAX_COMBINATIONS, replace=False)
            combinations = [combinations[i] for i in sorted(picked)]
        results = [ranking_metrics([statistics.fmean(accs) for accs in zip(*(by_seed[s] for s in seeds))], truth)
                   for seeds in combinations]
        rows.append({"runs": k, "combinations": len(results),
                     **{m: (statistics.fmean(r[m] for r in results), min(r[m] for r in results),
                            max(r[m] for r in results)) for m in METRICS}})
    return rows


def perfect_scorer_tau(rows: list[dict]) -> float | None:
    """The Kendall tau against the truth of a scorer that knows each cell's expected accuracy,
    extrapolated from the mean tau of k more runs (None with fewer than two positive rows).

    Model: a run's accuracy is the cell's expected accuracy plus independent noise. Then the
    Pearson r of the mean of k runs with the truth is R * sqrt(k / (k + c)) (Spearman-Brown; c
    is the noise variance over the variance between cells), and for Gaussian scores Kendall's
    tau is (2 / pi) * asin(r) (Greiner's relation). Fitting R and c to the rows gives the k ->
    infinity tau, (2 / pi) * asin(R). Usage: perfect_scorer_tau(retraining_rows(truth, extra))
    """
    points = [(r["runs"], math.sin(math.pi * r["kendall_tau"][0] / 2)) for r in rows if r["kendall_tau"][0] > 0]
    if len(points) < 2:
        return None
    k, r = map(np.array, zip(*points))
    try:
        (ceiling, _), _ = curve_fit(lambda k, R, c: R * np.sqrt(k / (k + c)), k, r, p0=(r.max(), 1.0),
                                    bounds=((0.0, 0.0), (1.0, np.inf)))
    except RuntimeError:  # no convergence: rows too noisy (a few cells) to extrapolate
        return None
    return 2 / math.pi * math.asin(ceiling)


def perfect_scorer_interval(truth: Table, extra: Table, resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of `perfect_scorer_tau`, resampling the cells with replacement.
    Usage: low, high = perfect_scorer_interval(truth, extra)"""
    truth_mean, by_seed = np.array(truth.mean), {s: np.array(v) for s, v in aligned_runs(truth, extra).items()}
    rng, estimates = np.random.default_rng(seed), []
    for _ in range(resamples):
        cells = rng.integers(len(truth_mean), size=len(truth_mean))
        rows = rows_of_runs(list(truth_mean[cells]), {s: list(v[cells]) for s, v in by_seed.items()}, SIZES)
        estimates.append(perfect_scorer_tau(rows))
    low, high = np.nanpercentile(np.array(estimates, dtype=float), [2.5, 97.5])
    return float(low), float(high)


@dataclass(frozen=True)
class Config:
    truth: str = option("nb201_mnist1d", "the truth whose seeds are split", choices=tuple(TRUTHS))
    truth_seeds: tuple[int, ...] = option((0, 1), "the seeds that are the truth; the others are the scorers")
    table: Table | None = None  # a table to split instead of the truth's (Python only: tests)

    def __post_init__(self):
        check(self)


def run(config: Config) -> dict:
    whole = config.table or merged_table(TRUTHS[config.truth].tables)
    missing = [s for s in config.truth_seeds if s not in whole.by_seed]
    if missing:
        raise HypernasError(f"the table has no seed {missing[0]} (its seeds: {sorted(whole.by_seed)})")
    truth = whole.seeds(config.truth_seeds)
    extra = whole.seeds([s for s in whole.by_seed if s not in config.truth_seeds])
    if not extra.by_seed:
        raise HypernasError("every seed of the table is in the truth: no run is left to score it")
    return {"rows": retraining_rows(truth, extra), "truth": truth, "extra": extra}


def markdown(result: dict) -> str:
    rows, truth, extra = result["rows"], result["truth"], result["extra"]
    lines = [f"{len(truth.archs)} architectures; truth = mean test accuracy over seeds {sorted(truth.by_seed)} "
             f"(seed-to-seed Kendall tau {seed_to_seed_tau(truth.by_seed):.3f}); scorers = the mean of k more training "
             f"runs from seeds {sorted(extra.by_seed)}, every combination. Each cell: mean (min-max) over "
             "the combinations.", "",
             "| scorer | combinations | Kendall tau | Spearman rho | precision@10% | top-1 true acc |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        name = "one more training run" if r["runs"] == 1 else f"mean of {r['runs']} more training runs"
        cells = [f"{r[m][0]:.3f} ({r[m][1]:.3f}-{r[m][2]:.3f})" if r["combinations"] > 1 else f"{r[m][0]:.3f}"
                 for m in METRICS]
        lines.append(f"| {name} | {r['combinations']} | " + " | ".join(cells) + " |")
    ceiling = perfect_scorer_tau(rows)
    if ceiling is not None:
        low, high = perfect_scorer_interval(truth, extra)
        lines += ["", f"Extrapolated to infinitely many runs (`perfect_scorer_tau`), a scorer that knows every "
                      f"cell's expected accuracy would rank this truth at Kendall tau {ceiling:.3f} "
                      f"(95% bootstrap interval over the cells {low:.3f}-{high:.3f})."]
    split_half = noise_ceiling(truth.by_seed)
    if split_half is not None:
        lines.append(f"The split-half estimate of that ceiling from the truth's own seeds (`noise_ceiling`): {split_half:.3f}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.retraining", doc=__doc__)


if __name__ == "__main__":
    main()
