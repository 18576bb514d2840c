"""`python -m benchmarks.init`: does training start better from the hypernetwork's prediction?

For the first `--limit` networks of a truth (NB201 on MNIST-1D, macro networks on the harder
MNIST-1D), each trained with seeds 0 and 1 for 1, 2 and 6 epochs (the reference protocol's
schedule at each length) from random weights and from the prediction of the hypernetwork
`TRUTH_s0.pt` (`hypernas.ghn.start`, as `--final-init hypernet` does): the mean test accuracy
of each, the predicted start's lead with its 95% interval (a paired bootstrap over the
networks) and verdict, and on how many networks the predicted start won.

Usage:
    python -m benchmarks.init --hypernets runs/budget --limit 30 --out-md runs/budget/init.md
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from benchmarks.core.report import command, compared, table
from benchmarks.core.stats import paired_bootstrap
from benchmarks.core.truths import Judged, Loaded, load
from hypernas.config import TrainConfig
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.start import predicted_start, scoring_samples
from hypernas.options import check, option
from hypernas.train import train

EPOCHS = (1, 2, 6)
SEEDS = (0, 1)


@dataclass(frozen=True)
class Config:
    judged: Judged = option(Judged(truths=("nb201_mnist1d", "macro_mnist1d_small"), trainings=1, limit=30),
                            "the truths (their first --limit networks) and the hypernetwork TRUTH_s0.pt")

    def __post_init__(self):
        check(self)


def evaluate(loaded: Loaded) -> dict:
    data = loaded.data
    ghn = load_hypernet(loaded.hypernets[0], data=data).model
    x = scoring_samples(data)[0]
    acc = {(init, e): [] for init in ("random", "hypernet") for e in EPOCHS}  # per network: mean over the seeds
    jobs = [(G, e) for G in loaded.graphs for e in EPOCHS]
    for G, epochs in tqdm(jobs, desc=f"init {loaded.name}", unit="network"):
        for init in ("random", "hypernet"):
            start = predicted_start(ghn, G, x) if init == "hypernet" else None
            runs = [train(G, data, TrainConfig(epochs=epochs), seed=s, progress=False, init=start).test_accuracy
                    for s in SEEDS]
            acc[init, epochs].append(statistics.fmean(runs))
    rows = []
    for e in EPOCHS:
        r, h = np.array(acc["random", e]), np.array(acc["hypernet", e])
        lead = paired_bootstrap(lambda cells, _runs: float(h[cells].mean() - r[cells].mean()), len(r))
        rows.append({"epochs": e, "random": float(r.mean()), "hypernet": float(h.mean()), "lead": lead,
                     "wins": int((h > r).sum()), "networks": len(r)})
    return {"truth": loaded.name, "rows": rows}


def run(config: Config) -> list[dict]:
    import torch

    judged = config.judged
    torch.set_num_threads(judged.threads)
    return [evaluate(load(name, truth, 1, judged.hypernets, score=False, limit=judged.limit))
            for name, truth in judged.chosen()]


def markdown(results: list[dict]) -> str:
    lines = table(["truth", "epochs", "random start", "predicted start", "predicted start's lead (95% interval)",
                   "networks where predicted won"],
                  [[res["truth"], r["epochs"], f"{r['random']:.4f}", f"{r['hypernet']:.4f}", compared(r["lead"]),
                    f"{r['wins']} of {r['networks']}"] for res in results for r in res["rows"]])
    ahead = all(r["lead"].verdict() == "ahead" for res in results for r in res["rows"])
    return "\n".join([*lines, "", f"The predicted start ahead on every space and length: {'yes' if ahead else 'no'}."])


def main(argv: list[str] | None = None) -> list[dict]:
    return command(Config, run, markdown, argv, prog="python -m benchmarks.init", doc=__doc__)


if __name__ == "__main__":
    main()
