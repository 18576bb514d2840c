"""Large test sets for the MNIST-1D truths: more samples from the same generator, other draws.

MNIST-1D's 1,000 test samples give one network's accuracy a binomial noise of about 0.6
points, more than the differences between good architectures. Its generator can make as
many samples as asked, so a truth can be tested on 20,000 fresh ones while the training data,
and with it every hypernetwork and study, stays exactly the data `load_dataset` reads.

Usage:
    data = load_dataset("mnist1d")
    x, y = extra_test_set(data, n=20000)   # standardised as data.x_test is
"""

from __future__ import annotations

import numpy as np
import torch

from hypernas.data import MNIST1D_VARIANTS, Dataset
from hypernas.errors import DatasetError

EXTRA_SEED = 1042  # the generator's seed for extra test samples (the reference data uses 42)


def mnist1d_raw(changes: dict, num_samples: int | None = None, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D samples before `make_dataset`'s final standardisation, in its order.

    `make_dataset` standardises each draw by that draw's own mean and std, so samples of
    another draw would come out in slightly other units than the reference data. This is
    its loop (the package's own `transform`) without that last step, so that extra samples
    can be put in the reference's units; a test checks it against `make_dataset`.
    """
    from mnist1d.data import get_dataset_args, get_templates
    from mnist1d.transform import transform
    from mnist1d.utils import set_seed

    args = get_dataset_args()
    for key, value in {**changes, **({} if num_samples is None else {"num_samples": num_samples}),
                       **({} if seed is None else {"seed": seed})}.items():
        setattr(args, key, value)
    templates = get_templates()
    set_seed(args.seed)
    xs, ys = [], []
    for label in range(len(templates["y"])):
        for _ in range(args.num_samples // len(templates["y"])):
            x, _t = transform(templates["x"][label], templates["t"], args)
            xs.append(x)
            ys.append(templates["y"][label])
    order = np.random.permutation(len(ys))
    return np.stack(xs)[order], np.stack(ys)[order]


def extra_test_set(data: Dataset, n: int = 20000, seed: int = EXTRA_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` fresh test samples of an MNIST-1D dataset (`mnist1d` or a variant), standardised
    exactly as `data`'s own test split: first in the reference draw's units, then by `data`'s
    train statistics."""
    if data.name != "mnist1d" and data.name not in MNIST1D_VARIANTS:
        raise DatasetError(f"extra test samples are generated for MNIST-1D only, not {data.name}")
    if seed == 42:
        raise DatasetError("seed 42 is the reference draw: extra test samples need another seed")
    changes = MNIST1D_VARIANTS.get(data.name, {})
    reference, _ = mnist1d_raw(changes)
    x, y = mnist1d_raw(changes, num_samples=n, seed=seed)
    x = (x - reference.mean()) / reference.std()
    mean, std = np.array(data.input_mean), np.array(data.input_std)
    x = (x - mean) / std
    return torch.as_tensor(x[:, None, :], dtype=torch.float32), torch.as_tensor(y, dtype=torch.int64)
