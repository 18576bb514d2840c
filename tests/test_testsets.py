"""Extra MNIST-1D test samples: the package's generator, other draws, in the reference data's units."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.testsets import extra_test_set, mnist1d_raw
from hypernas.errors import DatasetError


def test_the_raw_generator_is_the_packages_own_before_its_standardisation():
    from mnist1d.data import get_dataset_args, make_dataset

    raw, y = mnist1d_raw({})
    d = make_dataset(get_dataset_args())
    assert np.array_equal((raw - raw.mean()) / raw.std(), np.concatenate([d["x"], d["x_test"]]))
    assert np.array_equal(y, np.concatenate([d["y"], d["y_test"]]))


def test_extra_samples_are_standardised_as_the_test_split_and_balanced(mnist1d):
    x, y = extra_test_set(mnist1d, n=2000)
    assert x.shape == (2000, 1, 40) and np.bincount(y.numpy()).tolist() == [200] * 10
    # the same distribution, the same units: means and sds agree within sampling noise
    assert abs(x.mean().item() - mnist1d.x_test.mean().item()) < 0.05
    assert abs(x.std().item() - mnist1d.x_test.std().item()) < 0.05
    assert not any(np.allclose(x[0].numpy(), t.numpy()) for t in mnist1d.x_test)  # other draws


def test_extra_samples_are_refused_where_they_cannot_be_new(mnist1d):
    from hypernas.data import load_dataset

    with pytest.raises(DatasetError, match="MNIST-1D only, not digits"):
        extra_test_set(load_dataset("digits"), n=10)
    with pytest.raises(DatasetError, match="seed 42 is the reference draw"):
        extra_test_set(mnist1d, n=10, seed=42)
