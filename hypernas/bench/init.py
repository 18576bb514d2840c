"""`hypernas bench init`: does training start better from the hypernetwork's prediction?

For the first `--archs` networks of a truth table (NB201 on MNIST-1D, macro networks on the
harder MNIST-1D), each trained with seeds 0 and 1 for 1, 2 and 6 epochs (the reference
protocol's schedule at each length) from random weights and from the prediction of the
hypernetwork `TRUTH_s0.pt` (`hypernas.ghn.start`, as `--final-init hypernet` does): mean
test accuracy of each, and on how many networks the predicted start won.

Usage:
    hypernas bench init --hypernets runs/budget --archs 30 --out-md runs/budget/init.md
"""

from __future__ import annotations

import argparse
import os
import statistics

from tqdm.auto import tqdm

from hypernas.bench import report
from hypernas.bench.truths import Loaded, load, resolve
from hypernas.config import TrainConfig
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.start import predicted_start, score_batch
from hypernas.train import train

EPOCHS = (1, 2, 6)
SEEDS = (0, 1)
DEFAULT_TRUTHS = ("nb201_mnist1d", "macro_mnist1d_small")


def evaluate(loaded: Loaded) -> dict:
    data = loaded.data
    ghn = load_hypernet(loaded.hypernets[0], data=data).model
    x = score_batch(data)
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
        r, h = acc["random", e], acc["hypernet", e]
        rows.append({"epochs": e, "random": statistics.fmean(r), "hypernet": statistics.fmean(h),
                     "wins": sum(b > a for a, b in zip(r, h)), "networks": len(r)})
    return {"truth": loaded.name, "rows": rows}


def markdown(results: list[dict]) -> str:
    lines = ["| truth | epochs | random start | predicted start | networks where predicted won |",
             "|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            lines.append(f"| {res['truth']} | {r['epochs']} | {r['random']:.4f} | {r['hypernet']:.4f} | "
                         f"{r['wins']} of {r['networks']} |")
    wins = all(r["hypernet"] > r["random"] for res in results for r in res["rows"])
    lines += ["", f"The predicted start ahead on every space and length: {'yes' if wins else 'no'}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="hypernas bench init", description=__doc__.split("\n")[0])
    ap.add_argument("--truths", default=",".join(DEFAULT_TRUTHS))
    ap.add_argument("--archs", type=int, default=30, help="the first N networks of each table")
    ap.add_argument("--hypernets", default=os.path.join("runs", "budget"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-md")
    args = ap.parse_args(argv)
    chosen = resolve(args.truths, ap)
    if args.archs < 1:
        ap.error("--archs must be >= 1")
    import torch

    torch.set_num_threads(args.threads)
    results = [evaluate(load(name, truth, 1, args.hypernets, score=False, limit=args.archs)) for name, truth in chosen]
    report(markdown(results), args.out_md)
    return results


if __name__ == "__main__":
    main()
