"""`hypernas bench finals`: which final stage finds the best network, simulated on the truth tables.

The tables hold the truth, so the final stage can be replayed without training: for K = 5,
10 and 20 trainings, the best true accuracy found by
- `score`: the top K by the hypernetwork's score (`--final-rounds 1`, the default);
- `size`: the top K by parameter count;
- `rounds2`, `rounds4`: K trainings in 2 or 4 rounds, each round refitting
  `hypernas.recalibrate`'s model, as `--final-rounds` does; a training's label is one seed's
  accuracy (seed 0), as one final training gives it, while what is reported is the best mean;
- `random`: K random networks (the exact expectation).
Over the whole table, and within the budget issue's limits (the 25th, 50th and 75th percentile
of the parameter count). Hypernetwork figures are mean ± sd over the same hypernetworks as
`hypernas bench budget` (read from `--hypernets`, trained there where missing).

Usage:
    hypernas bench finals --hypernets runs/budget --out-md runs/budget/finals.md
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import numpy as np

from hypernas.bench import report
from hypernas.bench.budget import mean_sd, random_picks, top_picks
from hypernas.bench.truths import REFERENCE, TRUTHS, Loaded, hypernet_paths, load, resolve
from hypernas.recalibrate import rank_features, rounds_of

KS = (5, 10, 20)
ROUNDS = (2, 4)
STRATEGIES = ("score", "size", "rounds2", "rounds4", "random")  # what `evaluate` gives by default
# (rows of a budget, their labels, their truth, K, R) -> the best truth among the K a design trains
Design = Callable[[list[dict], np.ndarray, np.ndarray, int, int], float]


def simulate_rounds(rows: list[dict], labels: np.ndarray, truth: np.ndarray, k: int, rounds: int) -> float:
    """The best truth among the K networks `--final-rounds` would train: round 1 in turn by
    score and by size, then by the model refitted on the labels of what was trained."""
    scores, sizes = [r["score"] for r in rows], [r["params"] for r in rows]
    chosen = [i for picks, _ in rounds_of(rank_features(rows), scores, sizes, k, rounds, lambda i: labels[i])
              for i in picks]
    return float(truth[chosen].max())


def evaluate(loaded: Loaded, designs: dict[str, Design] | None = None) -> dict:
    """Per (budget, K) cell, the best truth each strategy finds: the plain top K by score and by
    size, random picks, and each design of the rounds (`--final-rounds`' own unless `designs`
    says) at R = 2 and 4, named `NAMER`."""
    designs = designs or {"rounds": simulate_rounds}
    truth, label, params, fl = loaded.acc, loaded.seed(0), loaded.params, loaded.flops
    rng = np.random.default_rng(0)
    budgets = {"none": np.arange(len(truth))}
    for q in (25, 50, 75):
        limit = np.percentile(params, q, method="lower")
        budgets[f"params p{q}"] = np.flatnonzero(params <= limit)
    results = {}
    for budget, within in budgets.items():
        for k in KS:
            k_here = min(k, len(within))
            best: dict[str, list[float]] = {"score": [], "size": [], **{f"{d}{r}": [] for d in designs for r in ROUNDS}}
            for run in loaded.scores:
                rows = [{"score": float(run[i]), "params": params[i], "flops": fl[i]} for i in within]
                best["score"].append(top_picks(run[within], truth[within], k_here, rng)[1])
                for name, design in designs.items():
                    for rounds in ROUNDS:
                        best[f"{name}{rounds}"].append(design(rows, label[within], truth[within], k_here, rounds))
            best["size"] = [top_picks(params[within], truth[within], k_here, rng)[1]]
            best["random"] = [random_picks(truth[within], k_here)[1]]
            results[budget, k] = {"best": float(truth[within].max()), **best}
    return {"truth": loaded.name, "archs": len(truth), "results": results}


def gaps(result: dict) -> dict[str, list[float]]:
    """Per strategy, the table's best minus the strategy's best, averaged over the (budget, K)
    cells: one value per hypernetwork run (a strategy that needs none repeats its one value)."""
    cells = list(result["results"].values())
    runs = range(len(cells[0]["score"]))
    return {s: [statistics.fmean(c["best"] - c[s][min(r, len(c[s]) - 1)] for c in cells) for r in runs]
            for s in cells[0] if s != "best"}


def verdict(result: dict) -> dict[str, tuple[float, float]]:
    """Per rounds row: (its gap minus that of the better of score and size, over the table; the
    noise, the standard error of that difference over the hypernetwork runs)."""
    g = gaps(result)
    better = g[min(("score", "size"), key=lambda s: statistics.fmean(g[s]))]
    out = {}
    for s in ("rounds2", "rounds4"):
        diff = [a - b for a, b in zip(g[s], better)]
        out[s] = (statistics.fmean(diff), statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else 0.0)
    return out


def markdown(result: dict) -> str:
    g = gaps(result)
    lines = [f"### {result['truth']}: {result['archs']} architectures", "",
             "Gap of the best trained to the best, averaged over the cells below (mean ± sd over the hypernetworks):",
             "",
             "| " + " | ".join(STRATEGIES) + " |", "|" + "---|" * len(STRATEGIES),
             "| " + " | ".join(mean_sd(g[s], places=5) for s in STRATEGIES) + " |", ""]
    for s, (diff, noise) in verdict(result).items():
        lines.append(f"- {s} minus the better of score and size: {diff:+.5f} ± {noise:.5f}; never worse by more than "
                     f"the noise: {'yes' if diff <= noise else 'no'}; better than both: {'yes' if diff < 0 else 'no'}.")
    lines += ["", "Best true accuracy among the K trained, by strategy (hypernetwork-based rows: mean ± sd over its runs).",
              "", "| budget | K | table best | " + " | ".join(STRATEGIES) + " |", "|---|---|---|" + "---|" * len(STRATEGIES)]
    for (budget, k), cell in result["results"].items():
        lines.append(f"| {budget} | {k} | {cell['best']:.4f} | " + " | ".join(mean_sd(cell[s]) for s in STRATEGIES) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="hypernas bench finals", description=__doc__.split("\n")[0])
    ap.add_argument("--truths", default=",".join(REFERENCE), help=f"comma list of {', '.join(TRUTHS)}")
    ap.add_argument("--runs", type=int, default=3, help="hypernetworks per truth (as bench budget trains them)")
    ap.add_argument("--hypernets", default=os.path.join("runs", "budget"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--limit", type=int, help="the first N architectures of each table only (a quick check)")
    ap.add_argument("--out-md")
    args = ap.parse_args(argv)
    chosen = resolve(args.truths, ap)
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    for name, truth in chosen:  # refuses a missing hypernetwork before any work
        hypernet_paths(name, truth, args.runs, args.hypernets)
    import torch

    torch.set_num_threads(args.threads)
    results = [evaluate(load(name, truth, args.runs, args.hypernets, limit=args.limit)) for name, truth in chosen]
    report("\n\n".join(markdown(r) for r in results), args.out_md)
    return results


if __name__ == "__main__":
    main()
