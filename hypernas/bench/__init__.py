"""The benchmarks behind BENCHMARKS.md (`hypernas bench NAME --help`)."""

from __future__ import annotations

import os

# name -> what it measures: `hypernas bench --help` lists them
BENCHES = {"ranking": "scorers against the ground-truth table", "oracle": "steering on NB201's CIFAR-10 table",
           "speed": "scoring and training speed", "workers": "search throughput with several workers",
           "protocol": "the reference training protocol's sanity check", "dynamic": "scoring macro architectures",
           "ground_truth": "train the ground-truth table (resumable)", "search_report": "a finished search against the table",
           "retraining": "how well more training runs rank the ground-truth table",
           "sampler_overhead": "a sampler's own seconds over a long study",
           "budget": "the best architecture within a size or FLOPs limit, by each scorer",
           "finals": "final-stage strategies replayed on the truth tables",
           "init": "training from predicted weights against random ones"}


def report(text: str, out_md: str | None = None) -> None:
    """Print a bench's Markdown result and, if asked, write it to `out_md` (its folder made if missing).

    Usage: report(markdown_text, args.out_md)
    """
    print(text, flush=True)
    if out_md:
        if os.path.dirname(out_md):
            os.makedirs(os.path.dirname(out_md), exist_ok=True)
        with open(out_md, "w") as f:
            f.write(text + "\n")
