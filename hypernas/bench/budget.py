"""`hypernas bench budget`: the best architecture within a size or FLOPs limit, by each scorer.

On every shipped truth table (NB201 on MNIST-1D, NB201 on digits, macro networks on the harder
MNIST-1D), with budgets at the 25th, 50th and 75th percentile of the table's parameter counts
and of its FLOPs: for each budget and each scorer, the true accuracy of its top-1 pick within
the budget and the best of its top 3 (what a user gets with `--top-k 3`), the budget's best
beside them, and the scorer's Kendall tau within the budget, with the seed-to-seed tau there;
and each scorer's tau over the whole table.

Scorers: the hypernetwork's score, each of `--runs` hypernetworks trained on the train split
only (figures are mean ± sd over them); the largest network under the limit (`params`), and
the costliest (`flops`);
naswot and synflow; one epoch of training; random picks (their expected value, exactly).
Ties in a scorer are broken at random, averaged over many draws, so the parameter count is not
favoured or punished by the order of the table. Truth is the mean test accuracy over every
seed the table ships (six for the NB201 reference table, two for the others).

The hypernetworks are read from `--hypernets DIR` as `TRUTH_sSEED.pt`, trained first where
missing (resumable), with the configuration given in `TRUTHS`; nothing is tuned on a table.

Usage:
    hypernas bench budget --hypernets runs/budget --out-md runs/budget/budget.md
    hypernas bench budget --truths macro_mnist1d_small --runs 3
"""

from __future__ import annotations

import argparse
import math
import os
import statistics

import numpy as np
from scipy import stats

from hypernas.bench import report
from hypernas.bench.ranking import one_epoch_scorer, proxy_scorer
from hypernas.bench.truths import REFERENCE, TRUTHS, Loaded, load, resolve, with_fit
from hypernas.config import FitConfig
from hypernas.options import add_flags, flag_of, given_flags, read_mapping

PERCENTILES = (25, 50, 75)
TIE_DRAWS = 200  # random tie-breaks averaged per scorer and budget
OTHER_SCORERS = ("params", "flops", "naswot", "synflow", "one_epoch")


def top_picks(scores: np.ndarray, truth: np.ndarray, k: int, rng: np.random.Generator) -> tuple[float, float]:
    """(true accuracy of the top-1 pick, best true accuracy among the top k), expected over
    random tie-breaks of the scores."""
    if len(np.unique(scores)) == len(scores):
        order = np.argsort(-scores)
        return float(truth[order[0]]), float(truth[order[:k]].max())
    firsts, bests = [], []
    for _ in range(TIE_DRAWS):
        order = np.lexsort((rng.random(len(scores)), -scores))
        firsts.append(truth[order[0]])
        bests.append(truth[order[:k]].max())
    return float(np.mean(firsts)), float(np.mean(bests))


def random_picks(truth: np.ndarray, k: int) -> tuple[float, float]:
    """The expected true accuracy of one random pick, and of the best of k picks without
    replacement: P(the best is the i-th smallest) = C(i-1, k-1) / C(n, k)."""
    v, n = np.sort(truth), len(truth)
    k = min(k, n)
    weights = np.array([math.comb(i, k - 1) for i in range(n)], dtype=float) / math.comb(n, k)
    return float(v.mean()), float((weights * v).sum())


def tau(a, b) -> float:
    value = stats.kendalltau(a, b).statistic
    return 0.0 if math.isnan(value) else float(value)


def other_scorer(name: str, loaded: Loaded, seed: int) -> np.ndarray:
    """The scores of one scorer that is not the hypernetwork, in table order."""
    if name in ("params", "flops"):
        return getattr(loaded, name)
    scorer = one_epoch_scorer(loaded.data, seed) if name == "one_epoch" else proxy_scorer(name, loaded.data, seed)
    return np.array(scorer(loaded.graphs))


def evaluate(loaded: Loaded, seed: int = 0) -> dict:
    """Every scorer's picks and within-budget tau on one loaded truth, budget by budget."""
    acc = loaded.acc
    seeds = list(loaded.table.by_seed.values())
    sizes = {"params": loaded.params, "flops": loaded.flops}
    values = {"hypernet": loaded.scores, **{s: [other_scorer(s, loaded, seed)] for s in OTHER_SCORERS}}
    rng = np.random.default_rng(seed)
    budgets = []
    for metric, size in sizes.items():
        for q in PERCENTILES:
            limit = float(np.percentile(size, q, method="lower"))
            within = np.flatnonzero(size <= limit)
            row = {"metric": metric, "percentile": q, "limit": limit, "archs": len(within),
                   "best": float(acc[within].max()), "random": random_picks(acc[within], 3),
                   "seed_tau": tau(np.array(seeds[0])[within], np.array(seeds[1])[within]), "scorers": {}}
            for s, runs_of in values.items():
                picks = [top_picks(v[within], acc[within], 3, rng) for v in runs_of]
                row["scorers"][s] = {"top1": [p[0] for p in picks], "top3": [p[1] for p in picks],
                                     "tau": [tau(v[within], acc[within]) for v in runs_of]}
            budgets.append(row)
    return {"truth": loaded.name, "archs": len(acc), "seeds": len(seeds), "best": float(acc.max()),
            "seed_tau": tau(seeds[0], seeds[1]), "budgets": budgets,
            "global_tau": {s: [tau(v, acc) for v in runs_of] for s, runs_of in values.items()}}


def mean_sd(xs: list[float], places: int = 4) -> str:
    """`mean ± sd` to `places` places (the mean alone for one value)."""
    return f"{statistics.fmean(xs):.{places}f}" + (f" ± {statistics.stdev(xs):.{places}f}" if len(xs) > 1 else "")


def averaged(result: dict) -> dict[str, dict[str, list[float]]]:
    """Per scorer, averaged over the budgets: gaps of top-1 and best-of-3 to the budget's best,
    and tau; a list over the scorer's runs (the hypernetworks)."""
    out: dict[str, dict[str, list[float]]] = {}
    budgets = result["budgets"]
    for s in budgets[0]["scorers"]:
        runs = range(len(budgets[0]["scorers"][s]["tau"]))

        def over_budgets(value) -> list[float]:
            return [statistics.fmean(value(b["scorers"][s], b, r) for b in budgets) for r in runs]

        out[s] = {"gap1": over_budgets(lambda v, b, r: b["best"] - v["top1"][r]),
                  "gap3": over_budgets(lambda v, b, r: b["best"] - v["top3"][r]),
                  "tau": over_budgets(lambda v, b, r: v["tau"][r])}
    out["random"] = {"gap1": [statistics.fmean(b["best"] - b["random"][0] for b in budgets)],
                     "gap3": [statistics.fmean(b["best"] - b["random"][1] for b in budgets)], "tau": [0.0]}
    out["seed_to_seed"] = {"tau": [statistics.fmean(b["seed_tau"] for b in budgets)]}
    return out


def verdict(avg: dict) -> tuple[bool, bool]:
    """(the hypernetwork's best of 3 is closer to the budget's best than every other scorer's,
    its within-budget tau is above params, every zero-cost proxy and the seed-to-seed tau)."""
    mine = avg["hypernet"]
    closer = all(statistics.fmean(mine["gap3"]) < statistics.fmean(avg[s]["gap3"]) for s in (*OTHER_SCORERS, "random"))
    ranks = all(statistics.fmean(mine["tau"]) > statistics.fmean(avg[s]["tau"])
                for s in ("params", "naswot", "synflow", "seed_to_seed"))
    return closer, ranks


def markdown(result: dict) -> str:
    avg = averaged(result)
    lines = [f"### {result['truth']}: {result['archs']} architectures, truth = mean of {result['seeds']} seeds "
             f"(best {result['best']:.4f}, seed-to-seed tau {result['seed_tau']:.3f})", "",
             "Averaged over the 6 budgets (25th/50th/75th percentile of params and of FLOPs): the gap of the top-1 "
             "pick and of the best of the top 3 to the budget's best, and the within-budget Kendall tau.", "",
             "| scorer | top-1 gap | best-of-3 gap | within-budget tau | tau over the whole table |",
             "|---|---|---|---|---|"]
    whole = {**result["global_tau"], "random": [0.0], "seed_to_seed": [result["seed_tau"]]}
    for s, v in avg.items():
        gaps = [mean_sd(v[k]) if k in v else "" for k in ("gap1", "gap3")]
        lines.append(f"| {s} | {gaps[0]} | {gaps[1]} | {mean_sd(v['tau'])} | {mean_sd(whole[s])} |")
    closer, ranks = verdict(avg)
    lines += ["", f"Hypernetwork's best of 3 closer to the budget's best than every other scorer: {'yes' if closer else 'no'}; "
              f"its tau above params, naswot, synflow and the seed-to-seed tau: {'yes' if ranks else 'no'}.", "",
              "| budget | archs | best | hypernet top-1 | hypernet best of 3 | params best of 3 | random best of 3 | "
              "hypernet tau | params tau | seed tau |", "|---|---|---|---|---|---|---|---|---|---|"]
    for b in result["budgets"]:
        h, p = b["scorers"]["hypernet"], b["scorers"]["params"]
        lines.append(f"| {b['metric']} <= {b['limit']:,.0f} (p{b['percentile']}) | {b['archs']} | {b['best']:.4f} | "
                     f"{mean_sd(h['top1'])} | {mean_sd(h['top3'])} | {p['top3'][0]:.4f} | {b['random'][1]:.4f} | "
                     f"{mean_sd(h['tau'])} | {p['tau'][0]:.3f} | {b['seed_tau']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="hypernas bench budget", description=__doc__.split("\n")[0])
    ap.add_argument("--truths", default=",".join(REFERENCE), help=f"comma list of {', '.join(TRUTHS)} "
                                                                   f"[default: {','.join(REFERENCE)}]")
    ap.add_argument("--runs", type=int, default=3, help="hypernetwork training runs per truth (seeds 0..RUNS-1)")
    ap.add_argument("--hypernets", default=os.path.join("runs", "budget"), help="folder of the hypernetworks")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, help="the first N architectures of each table only (a quick check)")
    ap.add_argument("--out-md")
    # An arm of a development study: the hypernetworks' training options over each truth's own
    # (e.g. --layer transformer), as train-hypernet's flags; the seed is each run's number, and
    # an option not given keeps the truth's value (TRUTHS), not the default the help shows.
    add_flags(ap, FitConfig, only=tuple(k for k in FitConfig().record() if k != "seed"))
    args = ap.parse_args(argv)
    chosen = resolve(args.truths, ap)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    arm = read_mapping(FitConfig, given_flags(args, FitConfig), "command line", flag_of)
    import torch

    torch.set_num_threads(args.threads)
    results = [evaluate(load(name, with_fit(truth, arm), args.runs, args.hypernets, train=True, limit=args.limit))
               for name, truth in chosen]
    report("\n\n".join(markdown(r) for r in results), args.out_md)
    return results


if __name__ == "__main__":
    main()
