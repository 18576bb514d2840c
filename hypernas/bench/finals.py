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
from hypernas.bench.budget import REFERENCE, TRUTHS, hypernet_paths, mean_sd, merged_table, random_picks, top_picks
from hypernas.bench.ground_truth import arch_graph
from hypernas.data import load_dataset
from hypernas.graph import flops, param_count
from hypernas.recalibrate import rank_features, rounds_of
from hypernas.score import Scorer
from hypernas.spaces import get_space

KS = (5, 10, 20)
STRATEGIES = ("score", "size", "rounds2", "rounds4", "random")


def simulate_rounds(rows: list[dict], labels: np.ndarray, truth: np.ndarray, k: int, rounds: int) -> float:
    """The best truth among the K networks `--final-rounds` would train: round 1 by score,
    then by the model refitted on the labels of what was trained."""
    chosen = [i for picks, _ in rounds_of(rank_features(rows), [r["score"] for r in rows], k, rounds,
                                          lambda i: labels[i]) for i in picks]
    return float(truth[chosen].max())


def evaluate(name: str, hypernet_dir: str, runs: int, limit: int | None = None) -> dict:
    truth_spec = TRUTHS[name]
    table = merged_table(truth_spec.tables).head(limit)
    data = load_dataset(truth_spec.dataset)
    space = get_space(truth_spec.space)
    graphs = [arch_graph(space, a, data.in_channels, data.num_classes) for a in table.archs]
    truth, label = np.array(table.mean), np.array(table.by_seed[0])
    params = np.array([param_count(G, data.ndim) for G in graphs])
    sizes = {"params": params, "flops": np.array([flops(G, data.input_size) for G in graphs])}
    scores = [np.array([s.score for s in Scorer.from_checkpoint(path, data, samples=1).score(graphs)])
              for path in hypernet_paths(name, truth_spec, runs, hypernet_dir)]
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
            for run in scores:
                rows = [{"score": float(run[i]), "params": int(sizes["params"][i]), "flops": int(sizes["flops"][i])}
                        for i in within]
                best["score"].append(top_picks(run[within], truth[within], k_here, rng)[1])
                for rounds in (2, 4):
                    best[f"rounds{rounds}"].append(simulate_rounds(rows, label[within], truth[within], k_here, rounds))
            best["size"] = [top_picks(params[within].astype(float), truth[within], k_here, rng)[1]]
            best["random"] = [random_picks(truth[within], k_here)[1]]
            results[budget, k] = {"best": float(truth[within].max()), **best}
    return {"truth": name, "archs": len(truth), "results": results}


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
    chosen = [t for t in args.truths.split(",") if t]
    if [t for t in chosen if t not in TRUTHS] or args.runs < 1:
        ap.error(f"--truths takes {', '.join(TRUTHS)}; --runs must be >= 1")
    for t in chosen:  # before any work
        hypernet_paths(t, TRUTHS[t], args.runs, args.hypernets)
    import torch

    torch.set_num_threads(args.threads)
    results = [evaluate(t, args.hypernets, args.runs, args.limit) for t in chosen]
    report("\n\n".join(markdown(r) for r in results), args.out_md)
    return results


if __name__ == "__main__":
    main()
