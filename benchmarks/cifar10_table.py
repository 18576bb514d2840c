"""NAS-Bench-201 cells' CIFAR-10 accuracy, read from the installed `analog-nasbench` package.

Source
    PyPI package `analog-nasbench` 0.1.3 (AnalogNAS-Bench, the `analognasbench/` folder of
    https://github.com/IBM/analog-nas), file `analognasbench/data.anb` (sha256 85f3435b...).
    It is a test and benchmark dependency; the package itself no longer imports (it needs
    `pkg_resources`), so it is never imported: the file is found through the installed
    distribution's file list and read here. The package declares no license, so the
    project does not redistribute the numbers; pip installs them like any dependency.

What is taken
    `data.anb` is a pickle of a dict: NASLib-encoded 6-tuple -> an `Architecture` record.
    Only `baseline_accuracy` is kept: CIFAR-10 test accuracy in percent after ordinary
    (digital) training. These are AnalogNAS-Bench's own runs, not NAS-Bench-201's published
    numbers: per the repository's `analognasbench/training_script.py`, each cell was trained
    once for 200 epochs (SGD, lr 0.1, cosine, batch 256), and its test accuracy averaged over
    25 passes of the test set. The best cell scores 94.0664.

Restricted unpickler
    The file needs exactly two globals, `analognasbench.data.Architecture` and
    `analognasbench.data.DriftMeasurement`, built with no arguments and filled from a plain
    dict. `_RestrictedUnpickler.find_class` maps them to inert local record classes and
    refuses every other global, builtins and numpy included: a pickle runs code otherwise.

Mapping (NASLib's encoding -> our NB201 string)
    ops:   0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3
    edges: key position k is edge NASLIB_EDGES[k] = (0,1), (0,2), (0,3), (1,2), (1,3), (2,3),
           while `search_spaces.nb201.EDGES` orders them (0,1), (0,2), (1,2), (0,3), (1,3), (2,3).
    Check (tests/test_nb201_table.py): the 341 cells whose output is cut off from the input
    are exactly the cells at 10.0% (chance); reading the keys in our edge order instead
    breaks that (520 cells differ), as does swapping skip_connect and none.

Usage:
    table = load_cifar10_table()  # {"|nor_conv_3x3~0|+...": 94.0664, ...}, all 15,625 cells
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle

from hypernas.errors import DatasetError
from search_spaces import nb201

PACKAGE, DATA_FILE = "analog-nasbench", "analognasbench/data.anb"
DATA_SHA256 = "85f3435b877aa2d36268d55ce07f6ff6d73643d17a840f1941745da5eb80db32"
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_FIX = f"install it with `pip install {PACKAGE}==0.1.3` (the `test` extra does)"


class _Architecture:
    """Inert stand-in for `analognasbench.data.Architecture`: BUILD fills its `__dict__`."""


class _DriftMeasurement:
    """Inert stand-in for `analognasbench.data.DriftMeasurement`."""


_ALLOWED = {
    ("analognasbench.data", "Architecture"): _Architecture,
    ("analognasbench.data", "DriftMeasurement"): _DriftMeasurement,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the two record classes `data.anb` uses; every other global is refused."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"data.anb: refusing global {module}.{name}; only "
                                         f"{', '.join('.'.join(k) for k in _ALLOWED)} are allowed") from None


def default_path() -> str:
    """Where the installed `analog-nasbench` keeps `data.anb`."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DatasetError(f"the NB201 CIFAR-10 table comes from the package {PACKAGE!r}, which is not installed; "
                           f"{_FIX}") from None
    return str(dist.locate_file(DATA_FILE))


def naslib_to_cell(key: tuple[int, ...]) -> nb201.Cell:
    """Our cell (ops in `nb201.EDGES` order) for a NASLib 6-tuple."""
    ops = {edge: NASLIB_OPS[i] for edge, i in zip(NASLIB_EDGES, key)}
    return tuple(ops[e] for e in nb201.EDGES)


@functools.lru_cache(maxsize=4)
def load_cifar10_table(path: str | None = None) -> dict[str, float]:
    """NB201 string -> CIFAR-10 test accuracy (percent) for all 15,625 cells, from `data.anb`
    (by default the installed package's). A missing, altered or malformed file raises
    `DatasetError` naming it. Do not mutate the result: it is cached."""
    path = path or default_path()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise DatasetError(f"cannot read the NB201 CIFAR-10 table {path}: {err.strerror}; {_FIX}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != DATA_SHA256:
        raise DatasetError(f"{path} has sha256 {digest[:16]}..., not analog-nasbench 0.1.3's data.anb; {_FIX}")
    try:
        data = _RestrictedUnpickler(io.BytesIO(raw)).load()
    except Exception as err:  # any unpickling failure means the file is not what it claims
        raise DatasetError(f"{path} is not a readable data.anb: {type(err).__name__}: {err}") from None
    table = {}
    for key, rec in data.items():
        if not (isinstance(key, tuple) and len(key) == 6 and all(type(i) is int and 0 <= i < 5 for i in key)):
            raise DatasetError(f"{path}: unexpected key {key!r}")
        table[nb201.to_string(naslib_to_cell(key))] = round(rec.baseline_accuracy, 4)  # 4 decimals, as recorded
    if len(table) != nb201.SPACE.size:
        raise DatasetError(f"{path} has {len(table)} cells, expected {nb201.SPACE.size}")
    return table
