"""Train one hypernetwork of an arm: a truth's configuration (macro by default) with one change.

The arms that choose the macro hypernetwork's configuration (docs/history.md) are three
hypernetworks each (seeds 0, 1, 2), trained here into one folder and then scored on the
development table only:

    hypernas bench budget --truths macro_mnist1d_small_dev --runs 3 --hypernets DIR [FLAGS]

where FLAGS repeat the arm's options, so that the bench accepts the checkpoints as that
configuration. A change is either training options (`steps=2000`, `meta_batch=16`,
`rounds=8`: fields of FitConfig or HyperConfig), or `--widest-of K`: each training
architecture is the one with the widest layer of K uniform draws, so that the channel bases'
upper rows are trained more often; the early-stopping architectures stay uniform draws.
`--widest-of` is not recorded in the checkpoint: it changes what is drawn, not the model.

Usage: python scripts/macro_arms.py runs/arms/widest2 0 --widest-of 2
"""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import fields, replace

import torch

from hypernas.bench.ground_truth import SPACE_OPTIONS
from hypernas.bench.truths import TRUTHS
from hypernas.data import load_dataset
from hypernas.ghn import fit
from hypernas.spaces import get_space


def widest_of(k: int):
    """A drop-in for `fit._sample_infos` whose training draws are each the widest of `k`; its
    first call, the fixed early-stopping architectures, stays uniform."""
    uniform, calls = fit._sample_infos, []

    def widest(info) -> int:
        return max(node.shape.channels for node in info.nodes)

    def sample(space, rng: random.Random, n: int, data, options: dict) -> list:
        calls.append(n)
        if len(calls) == 1:
            return uniform(space, rng, n, data, options)
        # ties keep the first draw, so K = 1 is exactly the uniform draw
        return [max(uniform(space, rng, k, data, options), key=widest) for _ in range(n)]

    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder of the arm's hypernetworks")
    parser.add_argument("seed", type=int)
    parser.add_argument("changes", nargs="*", help="FIELD=VALUE of FitConfig or HyperConfig")
    parser.add_argument("--widest-of", type=int, default=1)
    parser.add_argument("--truth", default="macro_mnist1d_small_dev", help="whose configuration and data")
    args = parser.parse_args()
    torch.set_num_threads(1)  # three arms' runs share two cores
    truth = TRUTHS[args.truth]
    config = replace(truth.fit, seed=args.seed)
    hyper_fields = {f.name for f in fields(config.hyper)}
    for change in args.changes:
        key, _, value = change.partition("=")
        if key not in hyper_fields and key not in {f.name for f in fields(config)}:
            parser.error(f"{key!r} is not a field of FitConfig or HyperConfig (give FIELD=VALUE)")
        if key in hyper_fields:
            config = replace(config, hyper=replace(config.hyper, **{key: type(getattr(config.hyper, key))(value)}))
        else:
            config = replace(config, **{key: type(getattr(config, key))(value)})
    if args.widest_of > 1:
        fit._sample_infos = widest_of(args.widest_of)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{truth.hypernets or args.truth}_s{args.seed}.pt")  # as `bench budget` names them
    fit.fit_hypernet(get_space(truth.space), SPACE_OPTIONS.get(truth.space, {}), load_dataset(truth.dataset),
                     config, out=path, resume=True)


if __name__ == "__main__":
    main()
