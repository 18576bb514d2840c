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
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats

from hypernas.bench import report
from hypernas.bench.ground_truth import SPACE_OPTIONS, arch_graph
from hypernas.bench.ranking import one_epoch_scorer, proxy_scorer
from hypernas.bench.table import Table, read_table
from hypernas.config import FitConfig, HyperConfig
from hypernas.data import load_dataset
from hypernas.errors import CheckpointError
from hypernas.ghn.checkpoint import load_checkpoint
from hypernas.ghn.fit import check_resumable, fit_hypernet, fit_record
from hypernas.graph import flops, param_count
from hypernas.options import add_flags, build, flag_of, given_flags, read_mapping
from hypernas.score import Scorer
from hypernas.spaces import get_space

DATA = os.path.join(os.path.dirname(__file__), "data")
PERCENTILES = (25, 50, 75)
TIE_DRAWS = 200  # random tie-breaks averaged per scorer and budget


@dataclass(frozen=True)
class Truth:
    tables: tuple[str, ...]  # CSVs of one set of architectures, seeds merged
    space: str
    dataset: str
    fit: FitConfig = field(default_factory=FitConfig)
    hypernets: str = ""  # the file prefix of its hypernetworks, where another truth's serve it (same data)
    development: bool = False  # for choosing the hypernetwork's configuration; never reported as a result


MACRO_FIT = FitConfig(steps=1000, meta_batch=8, hyper=HyperConfig(layer="transformer"))
TRUTHS = {
    "nb201_mnist1d": Truth(("nb201_mnist1d.csv", "nb201_mnist1d_seeds2-5.csv"), "nb201", "mnist1d",
                           FitConfig(steps=1500, meta_batch=8)),  # the README's configuration
    "nb201_digits": Truth(("nb201_digits.csv",), "nb201", "digits", FitConfig(steps=1500, meta_batch=8)),
    # the transformer layer: chosen for macro networks on the development table (docs/history.md)
    "macro_mnist1d_small": Truth(("macro_mnist1d_small.csv",), "macro", "mnist1d_small", MACRO_FIT),
    "macro_mnist1d_small_dev": Truth(("macro_mnist1d_small_dev.csv",), "macro", "mnist1d_small", MACRO_FIT,
                                     "macro_mnist1d_small", development=True),
    "nb201_mnist1d_dev": Truth(("nb201_mnist1d_dev.csv", "nb201_mnist1d_dev_seeds2-5.csv"), "nb201", "mnist1d",
                               FitConfig(steps=1500, meta_batch=8), "nb201_mnist1d", development=True),
}
REFERENCE = tuple(name for name, t in TRUTHS.items() if not t.development)  # what is run unless --truths says
OTHER_SCORERS = ("params", "flops", "naswot", "synflow", "one_epoch")


def with_fit(truth: Truth, options: dict) -> Truth:
    """The truth with its hypernetworks' training options overridden by `options` (flat keys)."""
    return replace(truth, fit=build(FitConfig, {**truth.fit.record(), **options})) if options else truth


def merged_table(paths: tuple[str, ...]) -> Table:
    """The architectures of the first table with the seeds of all of them."""
    tables = [read_table(os.path.join(DATA, p)) for p in paths]
    archs = [a for a in tables[0].archs if all(a in t.archs for t in tables[1:])]
    by_seed = {}
    for t in tables:
        where = {a: i for i, a in enumerate(t.archs)}
        by_seed.update({s: [accs[where[a]] for a in archs] for s, accs in t.by_seed.items()})
    return Table(archs, by_seed)


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


def scorer_values(name: str, truth: Truth, graphs: list, data, hypernets: list[str], seed: int) -> list[list[float]]:
    """One list of scores per run of the scorer: a run per hypernetwork, one for the others."""
    if name == "hypernet":
        return [[s.score for s in Scorer.from_checkpoint(p, data, samples=1).score(graphs, progress=True)]
                for p in hypernets]
    if name == "params":
        return [[param_count(G, data.ndim) for G in graphs]]
    if name == "flops":
        return [[flops(G, data.input_size) for G in graphs]]
    if name == "one_epoch":
        return [one_epoch_scorer(data, seed)(graphs)]
    return [proxy_scorer(name, data, seed)(graphs)]


def hypernet_paths(name: str, truth: Truth, runs: int, hypernet_dir: str, data=None, space=None) -> list[str]:
    """The files of a truth's `runs` hypernetworks (`DIR/PREFIX_sSEED.pt`). Given `data` and
    `space`, each is trained first where missing or short (resumable), and one made with other
    training options is refused, so that a folder never passes off one configuration as another."""
    paths = [os.path.join(hypernet_dir, f"{truth.hypernets or name}_s{r}.pt") for r in range(runs)]
    for r, path in enumerate(paths):
        if data is None:
            if not os.path.exists(path) or (step := load_checkpoint(path)["step"]) < truth.fit.steps:
                state = "missing" if not os.path.exists(path) else f"unfinished (step {step} of {truth.fit.steps})"
                raise CheckpointError(f"hypernetwork {path} is {state}: `hypernas bench budget` trains it")
            continue
        fit, options = replace(truth.fit, seed=r), SPACE_OPTIONS.get(truth.space, {})
        if os.path.exists(path):
            ckpt = load_checkpoint(path)
            check_resumable(ckpt, fit_record(space, space.resolve_options(options), data, fit), path)
            if ckpt["step"] >= fit.steps:
                continue
        fit_hypernet(space, options, data, fit, out=path, resume=True)
    return paths


def evaluate(name: str, truth: Truth, runs: int, hypernet_dir: str, seed: int = 0, limit: int | None = None) -> dict:
    """Every scorer's picks and within-budget tau on one truth table, budget by budget
    (`limit`: its first architectures only, for a quick check)."""
    table = merged_table(truth.tables).head(limit)
    data = load_dataset(truth.dataset)
    space = get_space(truth.space)
    graphs = [arch_graph(space, a, data.in_channels, data.num_classes) for a in table.archs]
    hypernets = hypernet_paths(name, truth, runs, hypernet_dir, data, space)
    acc = np.array(table.mean)
    seeds = list(table.by_seed.values())
    sizes = {"params": np.array([param_count(G, data.ndim) for G in graphs]),
             "flops": np.array([flops(G, data.input_size) for G in graphs])}
    values = {s: [np.array(v) for v in scorer_values(s, truth, graphs, data, hypernets, seed)]
              for s in ("hypernet", *OTHER_SCORERS)}
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
    return {"truth": name, "archs": len(acc), "seeds": len(seeds), "best": float(acc.max()),
            "seed_tau": tau(seeds[0], seeds[1]), "budgets": budgets,
            "global_tau": {s: [tau(v, acc) for v in runs_of] for s, runs_of in values.items()}}


def mean_sd(xs: list[float]) -> str:
    """`mean ± sd` to 4 places (the mean alone for one value)."""
    return f"{statistics.fmean(xs):.4f}" + (f" ± {statistics.stdev(xs):.4f}" if len(xs) > 1 else "")


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
    chosen = [t for t in args.truths.split(",") if t]
    unknown = [t for t in chosen if t not in TRUTHS]
    if unknown or args.runs < 1:
        ap.error(f"--truths takes {', '.join(TRUTHS)} (got {unknown}); --runs must be >= 1")
    arm = read_mapping(FitConfig, given_flags(args, FitConfig), "command line", flag_of)
    import torch

    torch.set_num_threads(args.threads)
    results = [evaluate(name, with_fit(TRUTHS[name], arm), args.runs, args.hypernets, limit=args.limit)
               for name in chosen]
    report("\n\n".join(markdown(r) for r in results), args.out_md)
    return results


if __name__ == "__main__":
    main()
