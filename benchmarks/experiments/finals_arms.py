"""Which design of `--final-rounds` finds the best network? Development tables only.

Replays `python -m benchmarks.finals` on the development truths (the same budgets, K = 5, 10, 20,
R = 2 and 4, a training's label one seed's accuracy, the best all-seed mean reported) for
designs of the rounds, beside the plain top K by score and by size. A design is how round 1
picks, which of `hypernas.recalibrate`'s rank features the model sees, how many standard
deviations of its doubt are added to its mean, and whether it is gated:
- `current`: round 1 the top by score; every feature; mean + 1 sd (what `--final-rounds` did
  before this set; it now does `hedged_mean`);
- `mean`: as `current` with the mean alone (no exploration);
- `pair_mean`: as `mean` with the ranks of the score and the parameter count only;
- `hedged_mean`: round 1 takes in turn from the score's order and the size's (the largest
  first); then as `mean`;
- `gated`: as `mean`, but a later round follows the model only where its leave-one-out Kendall
  tau on the labels so far is above the score's own tau on them; otherwise it takes the next
  by score.
Prints, per truth and design, the gap to the best averaged over the 12 (budget, K) cells, both
R and the hypernetworks, and the design's difference from the better of score and size with
its standard error over the hypernetworks (docs/history.md has the criterion).

Usage: python -m benchmarks.experiments.finals_arms --hypernets nb201_mnist1d_dev=runs/budget macro_mnist1d_small_dev=runs/budget
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from benchmarks import finals
from benchmarks.core.stats import kendall_tau
from benchmarks.core.truths import TRUTHS, load
from hypernas import recalibrate


@dataclass(frozen=True)
class Design:
    hedged: bool = False  # round 1 alternates the score's order and the size's
    features: tuple[str, ...] = recalibrate.FEATURES
    exploration: float = 0.0
    gated: bool = False  # follow the model only where it predicts the labels better than the score


DESIGNS = {"current": Design(exploration=1.0), "mean": Design(),
           "pair_mean": Design(features=("score", "params")), "hedged_mean": Design(hedged=True),
           "gated": Design(gated=True)}


def first_round(scores: np.ndarray, sizes: np.ndarray, k: int, hedged: bool) -> list[int]:
    """Round 1: in turn by score and by size, or the top by score (ties by row)."""
    return recalibrate.first_round(scores, sizes, k) if hedged else recalibrate.next_round(scores, set(), k)


def kendall(a, b) -> float:
    # no evidence counts as none: a constant side is -1 here, not the benches' 0
    return kendall_tau(a, b) if len(set(a)) > 1 and len(set(b)) > 1 else -1.0


def simulate(design: Design, rows: list[dict], labels: np.ndarray, truth: np.ndarray, k: int, rounds: int) -> float:
    scores, sizes = np.array([r["score"] for r in rows]), np.array([r["params"] for r in rows])
    X = recalibrate.rank_features([{f: r.get(f) for f in design.features} for r in rows])
    chosen: list[int] = []
    for r, size in enumerate(recalibrate.round_sizes(k, rounds)):
        if r == 0:
            chosen += first_round(scores, sizes, size, design.hedged)
            continue
        y = labels[chosen]
        mean, std = recalibrate.predict(recalibrate.fit(X[chosen], y), X)
        if design.gated:
            loo = recalibrate.leave_one_out(X[chosen], y)["kendall_tau"]
            if loo is None or loo <= kendall(scores[chosen], y):  # not shown to rank better than the score
                mean, std = scores, np.zeros_like(std)
        chosen += recalibrate.next_round(mean + design.exploration * std, set(chosen), size)
    return float(truth[chosen].max())


def evaluate(name: str, hypernet_dir: str, runs: int) -> dict[str, list[float]]:
    """Per strategy, the gap to the best averaged over the cells (and both R), one value per
    hypernetwork (`size`, which needs none, repeats its one value)."""
    loaded = load(name, TRUTHS[name], runs, hypernet_dir)  # refuses missing or unfinished hypernetworks
    result = finals.evaluate(loaded, {d: partial(simulate, design) for d, design in DESIGNS.items()}, resamples=10)
    gaps = result["gaps"]
    both_r = {d: [statistics.fmean(per_r) for per_r in zip(*(gaps[f"{d}{r}"] for r in finals.ROUNDS))]
              for d in DESIGNS}
    return {"score": gaps["score"], "size": gaps["size"], **both_r}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hypernets", nargs="+", required=True, help="TRUTH=DIR for each development truth")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print("| truth | strategy | gap to the best | minus the better of score and size (± se over the runs) |")
    print("|---|---|---|---|")
    for pair in args.hypernets:
        name, folder = pair.split("=", 1)
        gaps = evaluate(name, folder, args.runs)
        better = gaps[min(("score", "size"), key=lambda s: statistics.fmean(gaps[s]))]  # over the runs
        for strategy, per_run in gaps.items():
            diff = [g - b for g, b in zip(per_run, better)]
            se = statistics.stdev(diff) / len(diff) ** 0.5 if len(diff) > 1 else 0.0
            mean_gap, mean_diff = statistics.fmean(per_run), statistics.fmean(diff)
            print(f"| {name} | {strategy} | {mean_gap:.5f} | {mean_diff:+.5f} ± {se:.5f} |")


if __name__ == "__main__":
    main()
