"""How well normal training itself ranks the reference table: the same cells trained again.

The reference table's truth is the mean test accuracy of two training runs (seeds 0 and 1),
so it is noisy, and no scorer can rank it perfectly. This bench measures how far a scorer can
get in practice: the same 300 cells trained with seeds 2 to 5 on the same protocol
(`EXTRA_TABLE`) are used as scorers, one run alone and the mean of two or of four runs, against
the table's truth. The mean of several runs estimates each cell's expected accuracy, which is
the most any scorer that does not see seeds 0 and 1 can know.

Each row is every combination of k of the extra seeds, with the mean and the range of its
metrics over the combinations. From the rows, `perfect_scorer_tau` extrapolates to k -> infinity:
the tau of a scorer that knows every cell's expected accuracy exactly, the ceiling of any scorer.

Usage:
    hypernas bench retraining --out-md runs/retraining.md
    # the development table's cells:
    hypernas bench retraining --table hypernas/bench/data/nb201_mnist1d_dev.csv --extra hypernas/bench/data/nb201_mnist1d_dev_seeds2-5.csv
    # the extra seeds were made with the ground-truth script, sharded over 16 processes:
    python -m hypernas.bench.ground_truth --seeds 2 3 4 5 --threads 1 --shard K/16 --out sK.csv
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics

import numpy as np
from scipy.optimize import curve_fit

from hypernas.bench import report
from hypernas.bench.ground_truth import DEFAULT_TABLE
from hypernas.bench.metrics import ranking_metrics
from hypernas.bench.table import Table, noise_ceiling, read_table
from hypernas.errors import HypernasError

EXTRA_TABLE = DEFAULT_TABLE.replace(".csv", "_seeds2-5.csv")
METRICS = ("kendall_tau", "spearman_rho", "precision_at_top", "top1_true")
SIZES = (1, 2, 3, 4)  # how many extra runs are averaged, per row


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
        results = [ranking_metrics([statistics.fmean(accs) for accs in zip(*(by_seed[s] for s in seeds))], truth)
                   for seeds in itertools.combinations(sorted(by_seed), k)]
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


def markdown(rows: list[dict], truth: Table, extra: Table) -> str:
    lines = [f"{len(truth.archs)} architectures; truth = mean test accuracy over seeds {sorted(truth.by_seed)} "
             f"(seed-to-seed Kendall tau {noise_ceiling(truth):.3f}); scorers = the mean of k more training "
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    """Print (and optionally write) the table; return its rows."""
    ap = argparse.ArgumentParser(prog="hypernas bench retraining", description=__doc__.split("\n")[0])
    ap.add_argument("--table", default=DEFAULT_TABLE, help="the ground truth (seeds 0 and 1)")
    ap.add_argument("--extra", default=EXTRA_TABLE, help="the same cells trained with other seeds")
    ap.add_argument("--out-md")
    args = ap.parse_args(argv)
    for path in (args.table, args.extra):
        if not os.path.exists(path):
            ap.error(f"no table at {path}")
    truth, extra = read_table(args.table), read_table(args.extra)
    rows = retraining_rows(truth, extra)
    text = markdown(rows, truth, extra)
    report(text, args.out_md)
    return rows


if __name__ == "__main__":
    main()
