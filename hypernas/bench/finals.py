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

import numpy as np

from hypernas.bench import report
from hypernas.bench.budget import mean_sd, random_picks, top_picks
from hypernas.bench.truths import REFERENCE, TRUTHS, Loaded, hypernet_paths, load, resolve
from hypernas.recalibrate import rank_features, rounds_of

KS = (5, 10, 20)
STRATEGIES = ("score", "size", "rounds2", "rounds4", "random")


def simulate_rounds(rows: list[dict], labels: np.ndarray, truth: np.ndarray, k: int, rounds: int) -> float:
    """The best truth among the K networks `--final-rounds` would train: round 1 by score,
    then by the model refitted on the labels of what was trained."""
    chosen = [i for picks, _ in rounds_of(rank_features(rows), [r["score"] for r in rows], k, rounds,
                                          lambda i: labels[i]) for i in picks]
    return float(truth[chosen].max())


def evaluate(loaded: Loaded) -> dict:
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
            best = {s: [] for s in STRATEGIES}
            for run in loaded.scores:
                rows = [{"score": float(run[i]), "params": params[i], "flops": fl[i]} for i in within]
                best["score"].append(top_picks(run[within], truth[within], k_here, rng)[1])
                for rounds in (2, 4):
                    best[f"rounds{rounds}"].append(simulate_rounds(rows, label[within], truth[within], k_here, rounds))
            best["size"] = [top_picks(params[within], truth[within], k_here, rng)[1]]
            best["random"] = [random_picks(truth[within], k_here)[1]]
            results[budget, k] = {"best": float(truth[within].max()), **best}
    return {"truth": loaded.name, "archs": len(truth), "results": results}


def verdict(result: dict) -> tuple[bool, bool]:
    """(rounds are never worse than the better of score and size by more than the noise, here
    the hypernetwork runs' standard error; some rounds row beats both somewhere)."""
    never_worse, better = True, False
    for cell in result["results"].values():
        reference = max(statistics.fmean(cell["score"]), statistics.fmean(cell["size"]))
        for s in ("rounds2", "rounds4"):
            noise = statistics.stdev(cell[s]) / len(cell[s]) ** 0.5 if len(cell[s]) > 1 else 0.0
            never_worse &= statistics.fmean(cell[s]) >= reference - max(noise, 1e-9)
            better |= statistics.fmean(cell[s]) > reference + 1e-9
    return never_worse, better


def markdown(result: dict) -> str:
    lines = [f"### {result['truth']}: {result['archs']} architectures", "",
             "Best true accuracy among the K trained, by strategy (hypernetwork-based rows: mean ± sd over its runs).",
             "", "| budget | K | table best | " + " | ".join(STRATEGIES) + " |", "|---|---|---|" + "---|" * len(STRATEGIES)]
    for (budget, k), cell in result["results"].items():
        lines.append(f"| {budget} | {k} | {cell['best']:.4f} | " + " | ".join(mean_sd(cell[s]) for s in STRATEGIES) + " |")
    never_worse, better = verdict(result)
    lines += ["", f"Rounds never worse than the better of score and size by more than the noise: "
              f"{'yes' if never_worse else 'no'}; better than both somewhere: {'yes' if better else 'no'}."]
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
