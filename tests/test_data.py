"""Datasets: splits, standardisation, and clear errors for missing or malformed data."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch
from conftest import AS_GIVEN

from hypernas.data import load_dataset
from hypernas.errors import DatasetError, UnknownNameError


def test_mnist1d_splits_and_standardisation(mnist1d):
    d = mnist1d
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (3600, 400, 1000)
    assert d.x_train.shape[1:] == (1, 40) and d.ndim == 1 and d.num_classes == 10
    x, _ = d.train_and_val()
    assert abs(x.mean().item()) < 1e-4 and abs(x.std().item() - 1) < 1e-3
    assert d.y_train.dtype == torch.int64


def test_validation_slice_is_fixed_and_disjoint(mnist1d):
    again = load_dataset("mnist1d")
    assert torch.equal(again.x_val, mnist1d.x_val)
    train_rows = {tuple(r.tolist()) for r in mnist1d.x_train[:, 0, :5]}
    assert not any(tuple(r.tolist()) in train_rows for r in mnist1d.x_val[:, 0, :5])


def test_digits_are_images():
    d = load_dataset("digits")
    assert d.x_train.shape[1:] == (1, 8, 8) and d.ndim == 2 and d.num_classes == 10
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 1797


def test_npz_with_and_without_test_arrays(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", x=rng.normal(size=(50, 3, 16)), y=rng.integers(0, 4, 50))
    d = load_dataset(str(tmp_path / "a.npz"))
    assert d.x_train.shape[1:] == (3, 16) and len(d.x_test) == 10 and d.num_classes <= 4
    np.savez(tmp_path / "b.npz", x=rng.normal(size=(30, 20)), y=rng.integers(0, 3, 30),
             x_test=rng.normal(size=(5, 20)), y_test=rng.integers(0, 3, 5))
    d = load_dataset(str(tmp_path / "b.npz"))
    assert d.x_train.shape[1:] == (1, 20) and len(d.x_test) == 5


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((4, 5))}, "needs arrays x and y"),
    ({"x": np.zeros((4, 5)), "y": np.zeros(3, dtype=int)}, "different lengths"),
    ({"x": np.zeros((4, 5)), "y": np.array([0.5, 1, 2, 3])}, "non-integer numbers such as 0.5"),
    ({"x": np.zeros((4,)), "y": np.zeros(4, dtype=int)}, "must be"),
    ({"x": np.full((4, 5), np.nan), "y": np.zeros(4, dtype=int)}, "NaN"),
])
def test_malformed_npz(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(str(tmp_path / "nope.npz"))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(UnknownNameError, match="mnist1d"):
        load_dataset("mnist2d")


def _write_cifar(folder, n=20):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)


def test_cifar10_from_local_pickles(tmp_path):
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("cifar10")
    with pytest.raises(DatasetError, match="no test_batch"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    _write_cifar(sub)
    d = load_dataset("cifar10", data_dir=str(tmp_path))
    assert d.x_train.shape[1:] == (3, 32, 32) and len(d.x_test) == 20 and len(d.x_train) + len(d.x_val) == 100


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    _write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(DatasetError, match="refusing to load builtins.print"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    (tmp_path / "test_batch").write_bytes(b"\x80\x04truncated")
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset("cifar10", data_dir=str(tmp_path))


# ---- layouts: each read as the user means, or refused naming the layouts that fit ----------------------------------

def _standardised(x):
    axes = (0,) + tuple(range(2, x.ndim))
    return (x - x.mean(axis=axes, keepdims=True)) / (x.std(axis=axes, keepdims=True) + 1e-8)


@pytest.mark.parametrize("layout", list(AS_GIVEN))
def test_each_layout_is_read_as_the_user_means(layout, tmp_path):
    given, meant = AS_GIVEN[layout]
    np.savez(tmp_path / "d.npz", x=given, y=np.arange(40) % 2, x_test=given[:4], y_test=np.arange(4) % 2)
    d = load_dataset(str(tmp_path / "d.npz"), layout=layout)
    assert d.layout == layout and d.x_train.shape[1:] == meant.shape[1:]
    x, _ = d.train_and_val()
    order = np.random.default_rng(0).permutation(40)  # the split's order (split_seed 0)
    n_val = len(d.x_val)
    expected = _standardised(meant)[np.concatenate([order[n_val:], order[:n_val]])]
    assert np.allclose(x.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("shape, read_as", [
    ((2, 12), "ncl"), ((12, 2), "nlc"), ((1, 40), "ncl"), ((3, 8, 8), "nchw"), ((8, 8, 2), "nhwc"),
    ((8, 8, 3), "nhwc"), ((1, 8, 8), "nchw"), ((40,), "ncl"),
])
def test_the_shape_settles_the_layout_where_a_small_channel_axis_says_it(shape, read_as, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, *shape)), y=np.arange(20) % 2)
    assert load_dataset(str(tmp_path / "d.npz")).layout == read_as


@pytest.mark.parametrize("shape, fits", [
    ((8, 8), "ncl (8 channels of length 8), nlc (8 channels of length 8), nhw (1-channel 8×8 images)"),
    ((100, 5), "ncl (100 channels of length 5), nlc (5 channels of length 100), nhw (1-channel 100×5 images)"),
    ((4, 4, 4), "nchw (4-channel 4×4 images), nhwc (4-channel 4×4 images)"),
])
def test_a_shape_the_rule_cannot_settle_is_refused_naming_the_layouts_that_fit(shape, fits, tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, *shape)), y=np.arange(20) % 2)
    with pytest.raises(DatasetError, match=re.escape(f"fits {fits}; say which with --layout")):
        load_dataset(str(tmp_path / "d.npz"))


def test_a_layout_that_does_not_fit_the_array_or_contradicts_the_file_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 8, 8)), y=np.arange(20) % 2)
    with pytest.raises(DatasetError, match="layout nchw needs x of 4 axes"):
        load_dataset(str(tmp_path / "d.npz"), layout="nchw")
    np.savez(tmp_path / "e.npz", x=np.zeros((20, 8, 8, 2)), y=np.arange(20) % 2, layout="channels_last")
    assert load_dataset(str(tmp_path / "e.npz")).layout == "nhwc"  # the file's own word, in the older spelling
    with pytest.raises(DatasetError, match="says layout nhwc.*--layout nchw"):
        load_dataset(str(tmp_path / "e.npz"), layout="nchw")
    with pytest.raises(DatasetError, match="digits is read as nchw"):
        load_dataset("digits", layout="nhwc")


def test_the_summary_says_what_was_read():
    assert load_dataset("digits").summary() == ("digits: read 1,797 samples as 1-channel 8×8 images (layout nchw; "
                                                "1,294 to train, 144 to validate, 359 to test), 10 classes, labels 0..9")


# ---- labels ------------------------------------------------------------------------------------------------------


def test_labels_with_gaps_become_classes_0_to_k_minus_1_with_the_map_recorded(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(60, 1, 12)), y=np.array([0, 2, 5] * 20))
    with pytest.warns(UserWarning, match="labels 0, 2, 5 are not 0..2"):
        d = load_dataset(str(tmp_path / "d.npz"))
    assert d.num_classes == 3 and d.classes == (0, 2, 5) and set(d.y_train.tolist()) == {0, 1, 2}
    assert "labels 0, 2, 5 as classes 0..2" in d.summary()


@pytest.mark.parametrize("batch, named", [([1, 2, 3], "not a CIFAR-10 batch"),
                                          ({b"data": [[1]], b"labels": [0]}, "cannot read")])
def test_a_cifar_batch_of_another_shape_is_refused(batch, named, tmp_path):
    _write_cifar(tmp_path)
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump(batch, f)
    with pytest.raises(DatasetError, match=named):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_values_too_large_to_standardise_are_refused(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 1, 8)).astype(np.float32)
    x[::2] = 3e38
    x[1::2] = -3e38
    np.savez(tmp_path / "huge.npz", x=x, y=np.arange(40) % 2)
    with pytest.raises(DatasetError, match="too large to standardise"):
        load_dataset(str(tmp_path / "huge.npz"))


@pytest.mark.parametrize("labels", [np.zeros(40, dtype=int), np.full(40, 3), np.array(["cat"] * 40)])
def test_data_of_one_class_is_refused(labels, tmp_path):
    np.savez(tmp_path / "one.npz", x=np.random.default_rng(0).normal(size=(40, 1, 8)), y=labels)
    with pytest.raises(DatasetError, match="one class"):
        load_dataset(str(tmp_path / "one.npz"))
