"""NB201's CIFAR-10 table, read from the installed analog-nasbench package, and its reader."""

from __future__ import annotations

import io
import os
import pickle
import random

import pytest

from benchmarks import cifar10_table as nb201_table
from benchmarks.cifar10_table import load_cifar10_table
from hypernas.errors import HypernasError
from hypernas.graph import validate
from search_spaces import nb201

BEST_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def _dead(arch: str) -> bool:
    return validate(nb201.from_string(arch, 3, 10, channels=8, cells=1)).degenerate


def _dead_fast(arch: str) -> bool:
    """The cell's output is the zero tree (NB201's unique_str with zeros dropped)."""
    return nb201.unique_str(nb201.parse_string(arch), full_zero=True) == "#"


@pytest.fixture(scope="module")
def table() -> dict[str, float]:
    return load_cifar10_table()


def test_every_cell_once_and_the_best(table):
    assert sorted(table) == sorted(nb201.to_string(c) for c in nb201.all_cells())
    best = max(table, key=table.get)
    assert (best, table[best]) == (BEST_ARCH, 94.0664)


def test_dead_cells_score_chance_and_only_they_do(table):
    """The check that pins the NASLib edge and op mapping."""
    dead = {a for a in table if _dead_fast(a)}
    assert len(dead) == 341
    assert {a for a, acc in table.items() if acc <= 10.0} == dead
    assert min(acc for a, acc in table.items() if a not in dead) > 30.0  # 35.0652 in the data
    live = sorted(set(table) - dead)
    assert all(_dead(a) for a in random.Random(0).sample(sorted(dead), 40))  # the fast test agrees with the validator
    assert not any(_dead(a) for a in random.Random(0).sample(live, 100))


def test_our_edge_order_would_break_the_check(table):
    """Reading the keys in the string's edge order instead mislabels dead cells."""
    raw = nb201_table._RestrictedUnpickler(io.BytesIO(open(nb201_table.default_path(), "rb").read())).load()
    wrong = {nb201.to_string(tuple(nb201_table.NASLIB_OPS[i] for i in k)): r.baseline_accuracy for k, r in raw.items()}
    dead = {a for a in wrong if _dead_fast(a)}
    assert {a for a, acc in wrong.items() if acc <= 10.0} != dead


def test_restricted_unpickler_refuses_other_globals():
    for obj in (print, os.system, {"x": [1.0]}.get):
        with pytest.raises(pickle.UnpicklingError, match="refusing global"):
            nb201_table._RestrictedUnpickler(io.BytesIO(pickle.dumps(obj))).load()
    plain = {(0, 1, 2, 3, 4, 0): ("a", 1.5)}
    assert nb201_table._RestrictedUnpickler(io.BytesIO(pickle.dumps(plain))).load() == plain


def test_naslib_mapping():
    # NASLib key (edges 01, 02, 03, 12, 13, 23; 0 skip, 1 none, 2 conv3, 3 conv1, 4 pool) -> our string
    assert nb201.to_string(nb201_table.naslib_to_cell((2, 2, 0, 2, 3, 2))) == BEST_ARCH
    assert nb201.to_string(nb201_table.naslib_to_cell((1, 4, 0, 3, 1, 2))) == (
        "|none~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")


@pytest.mark.parametrize("content", [None, b"", b"\x80\x04garbage", pickle.dumps({"a": 1})])
def test_missing_or_altered_file(tmp_path, content):
    p = tmp_path / "data.anb"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(HypernasError, match="cannot read|sha256") as e:
        load_cifar10_table(str(p))
    assert str(p) in str(e.value)


def test_package_not_installed(monkeypatch):
    monkeypatch.setattr(nb201_table, "PACKAGE", "analog-nasbench-not-there")
    with pytest.raises(HypernasError, match="not installed.*pip install"):
        nb201_table.default_path()
