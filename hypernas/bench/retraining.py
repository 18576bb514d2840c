"""How well normal training itself ranks the reference table: the same cells trained again.

The reference table's truth is the mean test accuracy of two training runs (seeds 0 and 1),
so it is noisy, and no scorer can rank it perfectly. This bench measures how far a scorer can
get in practice: the same 300 cells trained with seeds 2 to 5 on the same protocol
(`EXTRA_TABLE`) are used as scorers, one run alone and the mean of two or of four runs, against
the table's truth. The mean of several runs estimates each cell's expected accuracy, which is
the most any scorer that does not see seeds 0 and 1 can know.

Each row is every combination of k of the extra seeds, with the mean and the range of its
metrics over the combinations.

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
import os
import statistics

from hypernas.bench import report
from hypernas.bench.ground_truth import DEFAULT_TABLE
from hypernas.bench.metrics import ranking_metrics
from hypernas.bench.ranking import Table, noise_ceiling, read_table
from hypernas.errors import HypernasError

EXTRA_TABLE = DEFAULT_TABLE.replace(".csv", "_seeds2-5.csv")
METRICS = ("kendall_tau", "spearman_rho", "precision_at_top", "top1_true")


def retraining_rows(truth: Table, extra: Table, sizes: tuple[int, ...] = (1, 2, 4)) -> list[dict]:
    """Per k in `sizes`: the metrics of the mean of k extra runs against `truth`'s mean accuracy,
    over every combination of k extra seeds ({"runs": k, "combinations": n, metric: (mean, min, max)})."""
    position = {a: i for i, a in enumerate(extra.archs)}
    missing = [a for a in truth.archs if a not in position]
    if missing:
        raise HypernasError(f"the extra runs lack {len(missing)} of the table's {len(truth.archs)} cells, "
                            f"e.g. {missing[0]}; train them with the ground-truth script first")
    by_seed = {s: [accs[position[a]] for a in truth.archs] for s, accs in extra.by_seed.items()}
    overlap = set(by_seed) & set(truth.by_seed)
    if overlap:  # a seed in both would score the truth with itself
        raise HypernasError(f"seeds {sorted(overlap)} are in both tables; the extra runs need seeds of their own")
    rows = []
    for k in sizes:
        if k > len(by_seed):
            continue
        results = [ranking_metrics([statistics.fmean(accs) for accs in zip(*(by_seed[s] for s in seeds))], truth.mean)
                   for seeds in itertools.combinations(sorted(by_seed), k)]
        rows.append({"runs": k, "combinations": len(results),
                     **{m: (statistics.fmean(r[m] for r in results), min(r[m] for r in results),
                            max(r[m] for r in results)) for m in METRICS}})
    return rows


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
