"""`python -m benchmarks.finals`: which final stage finds the best network, replayed on the truth tables.

The tables hold the truth, so the final stage can be replayed without training: for K = 5,
10 and 20 trainings, the best true accuracy found by
- `score`: the top K by the hypernetwork's score (`--final-rounds 1`, the default);
- `size`: the top K by parameter count;
- `rounds2`, `rounds4`: K trainings in 2 or 4 rounds, each round refitting
  `hypernas.recalibrate`'s model, as `--final-rounds` does; a training's label is one seed's
  accuracy (seed 0, held out of the truth where the table has three seeds or more), as one
  final training gives it;
- `random`: K random networks (the exact expectation).
Over the whole table, and within limits at the 25th, 50th and 75th percentile of the parameter
count. Each strategy's gap to the best, averaged over those cells, is compared with that of
the better of `score` and `size`: the difference with its 95% interval (a paired bootstrap over
the architectures and the hypernetwork runs) and a verdict. Hypernetwork figures are mean ± sd
over the same hypernetworks as `python -m benchmarks.budget` (read from `--hypernets`).

Usage:
    python -m benchmarks.finals --hypernets runs/budget --out-md runs/budget/finals.md
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from benchmarks.core.picks import random_picks, top_picks
from benchmarks.core.report import command, compared, mean_sd, table
from benchmarks.core.stats import bootstrap
from benchmarks.core.truths import Judged, Loaded, describe, hypernet_paths, load
from hypernas.options import check, option
from hypernas.recalibrate import rank_features, rounds_of

KS = (5, 10, 20)
ROUNDS = (2, 4)
STRATEGIES = ("score", "size", "rounds2", "rounds4", "random")  # what `evaluate` gives by default
# (rows of a budget, their labels, their truth, K, R) -> the best truth among the K a design trains
Design = Callable[[list[dict], np.ndarray, np.ndarray, int, int], float]


@dataclass(frozen=True)
class Config:
    judged: Judged = option(Judged(), "the truths and hypernetworks judged (as bench budget trains them)")
    resamples: int = option(200, "bootstrap resamples of each interval (each refits the rounds' model)", low=10)
    seed: int = option(0, "tie-breaks and the bootstrap", low=0)
    # designs of the rounds to replay instead of `--final-rounds`' own (Python only: the experiments)
    designs: dict = field(default_factory=dict)

    def __post_init__(self):
        check(self)


def simulate_rounds(rows: list[dict], labels: np.ndarray, truth: np.ndarray, k: int, rounds: int) -> float:
    """The best truth among the K networks `--final-rounds` would train: round 1 in turn by
    score and by size, then by the model refitted on the labels of what was trained."""
    scores, sizes = [r["score"] for r in rows], [r["params"] for r in rows]
    chosen = [i for picks, _ in rounds_of(rank_features(rows), scores, sizes, k, rounds, lambda i: labels[i])
              for i in picks]
    return float(truth[chosen].max())


def cells_of(loaded: Loaded) -> dict[str, np.ndarray]:
    """The budgets replayed: the whole table and three limits on the parameter count (masks)."""
    out = {"none": np.ones(len(loaded.acc), bool)}
    for q in (25, 50, 75):
        out[f"params p{q}"] = loaded.params <= np.percentile(loaded.params, q, method="lower")
    return out


def replay(loaded: Loaded, designs: dict[str, Design], cells: np.ndarray, runs: np.ndarray,
           rng: np.random.Generator, draws: int) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Per (budget, K), the best truth each strategy finds among the architectures `cells`
    (with repeats, as a bootstrap draws them), per hypernetwork run in `runs`."""
    truth, label, params, fl = loaded.acc, loaded.label, loaded.params, loaded.flops
    out = {}
    for budget, mask in cells_of(loaded).items():
        within = cells[mask[cells]]
        for k in KS:
            k_here = min(k, len(within))
            best = {"score": [], **{f"{d}{r}": [] for d in designs for r in ROUNDS}}
            for r in runs:
                run = loaded.scores[r]
                rows = [{"score": float(run[i]), "params": params[i], "flops": fl[i]} for i in within]
                best["score"].append(top_picks(run[within], truth[within], k_here, rng, draws)[1])
                for name, design in designs.items():
                    for rounds in ROUNDS:
                        best[f"{name}{rounds}"].append(design(rows, label[within], truth[within], k_here, rounds))
            best["size"] = [top_picks(params[within], truth[within], k_here, rng, draws)[1]]
            best["random"] = [random_picks(truth[within], k_here)[1]]
            out[budget, k] = {"best": float(truth[within].max()), **best}
    return out


def gaps(results: dict) -> dict[str, list[float]]:
    """Per strategy, the best minus the strategy's best, averaged over the (budget, K) cells: one
    value per hypernetwork run (a strategy that needs none repeats its one value)."""
    cells = list(results.values())
    runs = range(len(cells[0]["score"]))
    return {s: [statistics.fmean(c["best"] - c[s][min(r, len(c[s]) - 1)] for c in cells) for r in runs]
            for s in cells[0] if s != "best"}


def evaluate(loaded: Loaded, designs: dict[str, Design] | None = None, resamples: int = 200, seed: int = 0) -> dict:
    """Each strategy's best per (budget, K) cell, its mean gap, and its difference from the
    better of score and size with the interval of that difference."""
    designs = designs or {"rounds": simulate_rounds}
    rng = np.random.default_rng(seed)
    n, runs = len(loaded.acc), np.arange(len(loaded.scores))
    results = replay(loaded, designs, np.arange(n), runs, rng, 200)
    g = gaps(results)
    reference = min(("score", "size"), key=lambda s: statistics.fmean(g[s]))  # fixed before the resampling

    def differences(cells: np.ndarray, runs_drawn: np.ndarray) -> dict[str, float]:
        mean = {s: statistics.fmean(v) for s, v in gaps(replay(loaded, designs, cells, runs_drawn, rng, 1)).items()}
        return {s: mean[s] - mean[reference] for s in mean if s != reference}

    estimate = {s: statistics.fmean(v) - statistics.fmean(g[reference]) for s, v in g.items() if s != reference}
    intervals = bootstrap(differences, n, len(runs), resamples=resamples, seed=seed, estimate=estimate)
    return {"truth": describe(loaded), "results": results, "gaps": g, "reference": reference, "intervals": intervals}


def run(config: Config) -> list[dict]:
    judged = config.judged
    for name, truth in judged.chosen():  # refuses a missing hypernetwork before any work
        hypernet_paths(name, truth, judged.trainings, judged.hypernets)
    import torch

    torch.set_num_threads(judged.threads)
    return [evaluate(load(name, truth, judged.trainings, judged.hypernets, limit=judged.limit), config.designs or None,
                     config.resamples, config.seed) for name, truth in judged.chosen()]


def markdown_one(result: dict) -> str:
    g, ref, iv = result["gaps"], result["reference"], result["intervals"]
    strategies = [s for s in dict.fromkeys([*STRATEGIES, *g]) if s in g]
    lines = [f"### {result['truth']['name']}: {result['truth']['summary']}", "",
             f"Gap of the best trained to the best, averaged over the cells below (mean ± sd over the "
             f"hypernetworks), and its difference from `{ref}`, the better of score and size (lower is better; "
             f"95% interval, verdict):", ""]
    lines += table(["strategy", "gap", f"minus {ref}"],
                   [[s, mean_sd(g[s], places=5), "" if s == ref else compared(iv[s], higher_is_better=False, places=5)]
                    for s in strategies])
    lines += ["", "Best true accuracy among the K trained, by strategy (hypernetwork-based rows: mean ± sd over its runs).",
              ""]
    lines += table(["budget", "K", "table best", *strategies],
                   [[budget, k, f"{cell['best']:.4f}", *(mean_sd(cell[s]) for s in strategies)]
                    for (budget, k), cell in result["results"].items()])
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    return "\n\n".join(markdown_one(r) for r in results)


def main(argv: list[str] | None = None) -> list[dict]:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.finals", doc=__doc__)


if __name__ == "__main__":
    main()
