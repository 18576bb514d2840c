"""`python -m benchmarks.fidelity`: short trainings between the score and the finals, at equal training cost.

Every strategy spends the same epochs (`--epochs`, by default the final stage's 5 x 6), within
each budget (the whole table, and the 25th, 50th and 75th percentile of the parameter count):
- `score`: the top K by the hypernetwork's score trained normally, K = epochs // 6 (today's finals);
- `size`: the top K by parameter count;
- `rungs`: the `--pool` best by score through `hypernas.rungs`' successive halving from the
  hypernetwork's predicted weights (`--rungs`, `--keep`), then as many survivors trained
  normally as the epochs left allow;
- `rungs_random`: the same pool and rungs from random weights;
- `halving`: plain successive halving, `--pool` random architectures from random weights (the
  Hyperband / ASHA anchor an Optuna user would pick), then as many finals.
A final training is one run of the full protocol (the table's seed 0, held out of the truth);
each strategy's pick is its best final training, and it is judged by the pick's truth against
the budget's best. Each strategy's gap is compared with that of `rungs`: the difference with
its 95% interval (a paired bootstrap over the architectures; the rungs are replayed on every
resample from cached trainings) and a verdict.

Rung trainings are real: the reference protocol at the rung's length on the train split without
the validation slice, ranked on that slice (never the test set). They are cached in `--cache`
by truth, start (hypernetwork digest or random), architecture, epochs, learning rate and seed,
so a rerun trains nothing it has.

Usage:
    python -m benchmarks.fidelity --truths nb201_mnist1d_dev --trainings 1 --rungs 1,3 --pool 12
"""

from __future__ import annotations

import csv
import os
import statistics
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from benchmarks.core.picks import random_picks
from benchmarks.core.report import command, compared, mean_sd, table
from benchmarks.core.stats import bootstrap
from benchmarks.core.truths import Judged, Loaded, describe, load
from hypernas.errors import OptionError
from hypernas.ghn.checkpoint import file_digest, load_hypernet
from hypernas.ghn.start import predicted_start, scoring_samples
from hypernas.options import check, option
from hypernas.rung_stage import rung_training
from hypernas.rungs import SIGNALS, RungResult, cost, successive_halving

FINAL_EPOCHS = 6
STRATEGIES = ("score", "size", "rungs", "rungs_random", "halving")


@dataclass(frozen=True)
class Config:
    judged: Judged = option(Judged(truths=("nb201_mnist1d_dev",), trainings=1), "the truths and hypernetworks judged")
    epochs: int = option(30, "training epochs every strategy spends, finals included", low=FINAL_EPOCHS)
    rungs: tuple[int, ...] = option((1, 3), "the rungs' epochs")
    pool: int = option(12, "candidates of the first rung", low=2)
    keep: float = option(1 / 3, "the share of a rung promoted to the next", above=0, high=1)
    signal: str = option("loss", "what a rung ranks by, on the validation slice", choices=SIGNALS)
    lr: float = option(0.1, "the rungs' learning rate", above=0)
    resamples: int = option(200, "bootstrap resamples of each interval", low=10)
    seed: int = option(0, "the rung trainings' seed, random pools and the bootstrap", low=0)
    cache: str = option(os.path.join("runs", "fidelity_cache.csv"), "the CSV of rung trainings, reused across runs")

    def __post_init__(self):
        check(self)
        if cost(self.pool, self.rungs, self.keep) + FINAL_EPOCHS > self.epochs:
            raise OptionError(f"rungs over a pool of {self.pool} cost {cost(self.pool, self.rungs, self.keep)} epochs: "
                             f"no final training fits in --epochs {self.epochs}")


class RungCache:
    """Rung trainings on disk, one row each, appended as they finish (an interrupted run loses none)."""

    FIELDS = ["truth", "start", "arch", "epochs", "lr", "seed", "loss", "accuracy"]

    def __init__(self, path: str):
        self.path, self.rows = path, {}
        if os.path.exists(path):
            with open(path, newline="") as f:
                for r in csv.DictReader(f):
                    self.rows[self._key(r)] = RungResult(int(r["epochs"]), float(r["loss"]), float(r["accuracy"]))

    @staticmethod
    def _key(r: dict) -> tuple:
        return r["truth"], r["start"], r["arch"], int(r["epochs"]), float(r["lr"]), int(r["seed"])

    def get(self, row: dict, compute) -> RungResult:
        key = self._key(row)
        if key not in self.rows:
            self.rows[key] = compute()
            new = not os.path.exists(self.path)
            if os.path.dirname(self.path):
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a", newline="") as f:
                writer = csv.DictWriter(f, self.FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow({**row, "loss": f"{self.rows[key].loss:.6f}", "accuracy": f"{self.rows[key].accuracy:.6f}"})
        return self.rows[key]


def rung_trainer(loaded: Loaded, config: Config, cache: RungCache, hypernet: str | None):
    """measure(architecture index, epochs) for the rungs: a short training on the train split
    without the validation slice, from the hypernetwork's prediction (or random weights)."""
    ghn = load_hypernet(hypernet, data=loaded.data).model if hypernet else None
    start_name = file_digest(hypernet) if hypernet else "random"
    x = scoring_samples(loaded.data)[0]

    def measure(i: int, epochs: int) -> RungResult:
        def compute() -> RungResult:
            G = loaded.graphs[i]
            init = predicted_start(ghn, G, x) if ghn is not None else None
            return rung_training(G, loaded.data, epochs, init, config.seed, lr=config.lr)

        row = {"truth": loaded.name, "start": start_name, "arch": loaded.table.archs[i], "epochs": epochs,
               "lr": config.lr, "seed": config.seed}
        return cache.get(row, compute)

    return measure


def pick(finalists: list[int], label: np.ndarray) -> int:
    """The best final training among the finalists (ties by their order)."""
    return max(finalists, key=lambda i: label[i])


def strategies(loaded: Loaded, config: Config, cells: np.ndarray, run: int, measures: dict, rng) -> dict[str, float]:
    """Each strategy's pick's truth within `cells` (architecture indices, repeats allowed)."""
    acc, label, params = loaded.acc, loaded.label, loaded.params
    scores = loaded.scores[run]
    cells = np.unique(cells)  # a repeat adds nothing to a pool
    k = config.epochs // FINAL_EPOCHS
    by_score = sorted(cells, key=lambda i: (-scores[i], i))
    left = (config.epochs - cost(config.pool, config.rungs, config.keep)) // FINAL_EPOCHS
    out = {"score": acc[pick(by_score[:k], label)],
           "size": acc[pick(sorted(cells, key=lambda i: (-params[i], rng.random()))[:k], label)]}
    for name, start, pool in (("rungs", "hypernet", by_score[:config.pool]), ("rungs_random", "random", by_score[:config.pool]),
                              ("halving", "random", list(rng.permutation(cells)[:config.pool]))):
        outcome = successive_halving(pool, config.rungs, config.keep, measures[start, run], config.signal)
        out[name] = acc[pick(outcome.survivors[:left], label)]
    return out


def evaluate(loaded: Loaded, config: Config) -> dict:
    cache = RungCache(config.cache)
    runs = range(len(loaded.scores))
    measures = {("hypernet", r): rung_trainer(loaded, config, cache, loaded.hypernets[r]) for r in runs}
    measures |= {("random", r): rung_trainer(loaded, config, cache, None) for r in runs}
    budgets = {"none": np.arange(len(loaded.acc))}
    for q in (25, 50, 75):
        budgets[f"params p{q}"] = np.flatnonzero(loaded.params <= np.percentile(loaded.params, q, method="lower"))
    results = {}
    for budget, within in tqdm(budgets.items(), desc=f"fidelity {loaded.name}", unit="budget"):
        rng = np.random.default_rng(config.seed)
        per_run = [strategies(loaded, config, within, r, measures, rng) for r in runs]
        best = float(loaded.acc[within].max())
        gaps = {s: [best - p[s] for p in per_run] for s in STRATEGIES}
        gaps["random"] = [best - random_picks(loaded.acc[within], config.epochs // FINAL_EPOCHS)[1]]

        def leads(cells: np.ndarray, runs_drawn: np.ndarray) -> dict[str, float]:
            inside = within[cells]
            top = float(loaded.acc[inside].max())
            drawn = [strategies(loaded, config, inside, r, measures, np.random.default_rng(config.seed)) for r in runs_drawn]
            mean = {s: statistics.fmean(top - d[s] for d in drawn) for s in STRATEGIES}
            return {s: mean[s] - mean["rungs"] for s in STRATEGIES if s != "rungs"}

        estimate = {s: statistics.fmean(gaps[s]) - statistics.fmean(gaps["rungs"]) for s in STRATEGIES if s != "rungs"}
        intervals = bootstrap(leads, len(within), len(runs), resamples=config.resamples, seed=config.seed,
                              estimate=estimate)
        results[budget] = {"best": best, "archs": len(within), "gaps": gaps, "intervals": intervals}
    return {"truth": describe(loaded), "results": results, "config": config}


def run(config: Config) -> list[dict]:
    import torch

    judged = config.judged
    torch.set_num_threads(judged.threads)
    return [evaluate(load(name, truth, judged.trainings, judged.hypernets, train=True, limit=judged.limit), config)
            for name, truth in judged.chosen()]


def markdown_one(result: dict) -> str:
    c = result["config"]
    lines = [f"### {result['truth']['name']}: {result['truth']['summary']}", "",
             f"{c.epochs} epochs per strategy; rungs {','.join(map(str, c.rungs))} over a pool of {c.pool}, keeping "
             f"{c.keep:.2f}, ranked by validation {c.signal}, lr {c.lr}; finals of {FINAL_EPOCHS} epochs. Gap of the "
             "pick's truth to the budget's best (mean ± sd over the hypernetworks), and each strategy's gap minus "
             "that of `rungs` (lower is better; 95% interval, verdict).", ""]
    rows = []
    for budget, r in result["results"].items():
        for s in (*STRATEGIES, "random"):
            lead = "" if s in ("rungs", "random") else compared(r["intervals"][s], higher_is_better=False, places=4)
            rows.append([budget, r["archs"], s, mean_sd(r["gaps"][s]), lead])
    return "\n".join(lines + table(["budget", "archs", "strategy", "gap to the best", "minus rungs' gap"], rows))


def markdown(results: list[dict]) -> str:
    return "\n\n".join(markdown_one(r) for r in results)


def main(argv: list[str] | None = None) -> list[dict]:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.fidelity", doc=__doc__)


if __name__ == "__main__":
    main()
