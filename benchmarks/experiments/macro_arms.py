"""Train one hypernetwork of an arm: a truth's configuration (macro by default) with one change.

The arms that choose the macro hypernetwork's configuration (docs/history.md) are three
hypernetworks each (seeds 0, 1, 2), trained here into one folder and then scored on the
development table only, with the arm's options, so that the bench accepts the checkpoints as
that configuration:

    budget.run(budget.Config(judged=Judged(truths=("macro_mnist1d_small_dev",), hypernets=DIR), fit=CHANGES))

A change is a training option (`steps=2000`, `meta_batch=16`, `rounds=8`: fields of FitConfig
or HyperConfig).

Usage: python -m benchmarks.experiments.macro_arms runs/arms/steps2000 0 steps=2000
"""

from __future__ import annotations

import argparse
import os
from dataclasses import fields, replace

import torch

from benchmarks.core.tables import SPACE_OPTIONS
from benchmarks.core.truths import TRUTHS
from hypernas.data import load_dataset
from hypernas.ghn import fit
from hypernas.spaces import get_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder of the arm's hypernetworks")
    parser.add_argument("seed", type=int)
    parser.add_argument("changes", nargs="*", help="FIELD=VALUE of FitConfig or HyperConfig")
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
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{truth.hypernets or args.truth}_s{args.seed}.pt")  # as `bench budget` names them
    fit.fit_hypernet(get_space(truth.space), SPACE_OPTIONS.get(truth.space, {}), load_dataset(truth.dataset),
                     config, out=path, resume=True)


if __name__ == "__main__":
    main()
