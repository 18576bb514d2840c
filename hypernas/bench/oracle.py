"""`hypernas bench oracle`: the steering of `hypernas search`, measured on NAS-Bench-201's CIFAR-10 table.

The search loop is the one `hypernas search` runs (`hypernas.search.search_loop`: ask, build,
hash, deduplicate, score, tell, store), with the hypernetwork replaced by a lookup of each
cell's 200-epoch CIFAR-10 test accuracy in the shipped table. The space is `nb201` with its
default skeleton (C=16, N=5) on CIFAR-10's input (3 channels, 10 classes).

A query is one table lookup, that is one distinct architecture: the loop serves isomorphic
duplicates from its cache by canonical hash, for every method alike, as it does for users.
The curves are also reported per trial (every trial a query, as in the published
baselines), from the same runs. Regret = the table's best accuracy minus the best found.

Methods (each through the same loop, one trial per ask):
- random, tpe (Optuna's defaults), nsga2 (population 20): Optuna's samplers;
- evolution: regularized evolution, population 10, sample 3 (`hypernas.samplers`);
- tuned: the project's best steering configuration (`TUNED`), fixed before the final run;
  it uses no knowledge of this table (see BENCHMARKS.md for how it was chosen).

Usage:
    hypernas bench oracle --seeds 20 --budget 200 --out-md runs/oracle/oracle.md --out-png runs/oracle/oracle.png
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np
import optuna
import torch
from tqdm.auto import tqdm

from hypernas.bench.nb201_table import load_cifar10_table
from hypernas.graph import GraphInfo, flops, param_count
from hypernas.initial_design import synflow_design
from hypernas.score import Score
from hypernas.search import SearchConfig, search_loop
from hypernas.spaces import get_space

CIFAR10 = {"in_channels": 3, "num_classes": 10, "input_size": (32, 32)}
CHECKPOINTS = (50, 100, 200)
BASE = SearchConfig(space="nb201", trials=200, batch=1, distinct=True, top_k=0)
METHODS: dict[str, SearchConfig] = {
    "random": replace(BASE, sampler="random"),
    "tpe": replace(BASE, sampler="tpe"),
    "nsga2": replace(BASE, sampler="nsga2", sampler_options={"population_size": 20}),
    "evolution": replace(BASE, sampler="evolution", sampler_options={"population_size": 10, "sample_size": 3}),
}
# Fixed before its first run on this table, from the literature's advice (Abdelfattah et al.
# 2021: a synflow warm-up helps search) and the product's defaults: Optuna's TPE, started
# from the 10 best of 200 random cells by synflow, which reads no data and no table (the
# pool is small because float64 synflow of a C=16, N=5 network costs 0.1-0.3 s on a CPU).
TUNED = replace(BASE, sampler="tpe", warm_start=10, warm_pool=200)


class TableScorer:
    """A stand-in for the hypernetwork's `Scorer`: each architecture's score is its table
    accuracy, found through the NB201 string the space wrote on the graph (`arch`)."""

    def __init__(self, table: dict[str, float]):
        self.table, self.lookups = table, 0

    def score(self, infos: list[GraphInfo], keys: list[str]) -> list[Score]:
        out = []
        for info, key in zip(infos, keys):
            acc = self.table[info.labels["arch"]]
            self.lookups += 1
            out.append(Score(hash=key, score=acc, score_std=0.0, accuracy=acc, accuracy_std=0.0, loss=0.0, loss_std=0.0,
                             params=param_count(info, 2), flops=flops(info, CIFAR10["input_size"]),
                             degenerate=info.degenerate, samples=1))
        return out


def best_so_far(study: optuna.Study, per: str = "query") -> list[float]:
    """Best accuracy after each query (distinct architecture) or each trial, in trial order."""
    trials = sorted(study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]), key=lambda t: t.number)
    if per == "query":
        trials = [t for t in trials if "duplicate_of" not in t.user_attrs]
    return list(np.maximum.accumulate([t.values[0] for t in trials]))


def run_method(cfg: SearchConfig, seed: int, table: dict[str, float], synflow_cache: dict | None = None) -> optuna.Study:
    """One seeded search through the product's loop, in an in-memory study. A warm start is
    computed as `hypernas search` computes it; `synflow_cache` shares synflow values across runs."""
    cfg = replace(cfg, seed=seed)
    space = get_space(cfg.space)
    initial = None
    if cfg.warm_start:
        initial = synflow_design(space, {}, CIFAR10["in_channels"], CIFAR10["num_classes"], CIFAR10["input_size"],
                                 cfg.warm_start, cfg.warm_pool, seed, cache=synflow_cache, progress=False)
    study = optuna.create_study(direction="maximize")
    search_loop(cfg, study, space, {}, CIFAR10["in_channels"], CIFAR10["num_classes"], TableScorer(table),
                progress=False, initial=initial)
    return study


def summarize(curves: dict[str, list[list[float]]], best: float, checkpoints=CHECKPOINTS) -> dict[str, dict[int, tuple]]:
    """method -> budget -> (mean regret, std regret, runs) over the seeds' best-so-far curves."""
    out: dict[str, dict[int, tuple]] = {}
    for method, runs in curves.items():
        out[method] = {}
        for q in checkpoints:
            regrets = [best - curve[q - 1] for curve in runs if len(curve) >= q]
            if regrets:
                out[method][q] = (statistics.fmean(regrets), statistics.pstdev(regrets), len(regrets))
    return out


def markdown(summary: dict, title: str) -> str:
    budgets = sorted({q for per in summary.values() for q in per})
    lines = [title, "", "| method | " + " | ".join(f"regret at {q}" for q in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for method, per in summary.items():
        cells = [f"{per[q][0]:.3f} ± {per[q][1]:.3f}" if q in per else "n/a" for q in budgets]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: dict[str, list[list[float]]], best: float, path: str) -> None:
    """Mean regret (log scale) against queries, one line per method, a band of ±1 std/sqrt(n)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, runs in curves.items():
        n = min(len(c) for c in runs)
        regret = best - np.array([c[:n] for c in runs])
        mean, sem = regret.mean(0), regret.std(0) / np.sqrt(len(runs))
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=method)
        ax.fill_between(x, np.maximum(mean - sem, 1e-3), mean + sem, alpha=0.2)
    ax.set_yscale("log")
    ax.set_xlabel("queries (distinct architectures looked up)")
    ax.set_ylabel(f"regret (best {best:.2f} minus best found)")
    ax.set_title(f"NAS-Bench-201 CIFAR-10 oracle, {len(next(iter(curves.values())))} seeds")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="hypernas bench oracle", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=200, help="distinct architectures per run")
    ap.add_argument("--methods", default=",".join([*METHODS, "tuned"]))
    ap.add_argument("--warm-pool", type=int, help=f"override the tuned method's synflow pool ({TUNED.warm_pool})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (synflow of the warm start)")
    ap.add_argument("--out-md")
    ap.add_argument("--out-png")
    args = ap.parse_args(argv)
    methods = {**METHODS, "tuned": replace(TUNED, warm_pool=args.warm_pool or TUNED.warm_pool)}
    chosen = args.methods.split(",")
    unknown = [m for m in chosen if m not in methods]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(methods)}")
    torch.set_num_threads(args.threads)
    table = load_cifar10_table()
    best = max(table.values())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    curves = {m: [] for m in chosen}
    trial_curves = {m: [] for m in chosen}
    seconds = {m: 0.0 for m in chosen}
    synflow_cache: dict[str, float] = {}  # per architecture; its cost is in the first runs' seconds
    with tqdm(total=len(chosen) * args.seeds, desc="oracle", unit="run") as bar:
        for seed in range(args.seeds):
            for m in chosen:
                start = time.perf_counter()
                study = run_method(replace(methods[m], trials=args.budget), seed, table, synflow_cache)
                seconds[m] += time.perf_counter() - start
                curves[m].append(best_so_far(study, "query"))
                trial_curves[m].append(best_so_far(study, "trial"))
                bar.update()
    checkpoints = tuple(q for q in CHECKPOINTS if q <= args.budget) or (args.budget,)
    by_query, by_trial = summarize(curves, best, checkpoints), summarize(trial_curves, best, checkpoints)
    text = "\n\n".join([
        markdown(by_query, f"Regret per query (distinct architecture), mean ± std over {args.seeds} seeds; "
                           f"table best {best:.2f}."),
        markdown(by_trial, "The same runs per trial (every trial a query, duplicates included)."),
        "Seconds per run: " + ", ".join(f"{m} {s / args.seeds:.1f}" for m, s in seconds.items()),
    ])
    print(text)
    if args.out_md:
        with open(args.out_md, "w") as f:
            f.write(text + "\n")
    if args.out_png:
        plot(curves, best, args.out_png)
    return {"by_query": by_query, "by_trial": by_trial, "best": best}


if __name__ == "__main__":
    main()
