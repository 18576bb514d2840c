"""Shared fixtures: small graphs and a cached MNIST-1D."""

from __future__ import annotations

import contextlib
import re
import subprocess

import networkx as nx
import numpy as np
import pytest

from search_spaces import nb201

GOOD_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
DEAD_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|none~0|none~1|none~2|"


_BASE = np.random.default_rng(5).normal(size=(40, 2, 8, 8)).astype(np.float32)  # (N, C, H, W), channels first
AS_GIVEN = {  # layout -> (the array in that layout, the channels-first array it means)
    "ncl": (_BASE[:, :, 0, :], _BASE[:, :, 0, :]),
    "nlc": (_BASE[:, :, 0, :].transpose(0, 2, 1), _BASE[:, :, 0, :]),
    "nchw": (_BASE, _BASE),
    "nhwc": (_BASE.transpose(0, 2, 3, 1), _BASE),
    "nhw": (_BASE[:, 0], _BASE[:, :1]),
}


def small_nb201(text: str = GOOD_CELL, in_channels: int = 1, num_classes: int = 10) -> nx.DiGraph:
    return nb201.from_string(text, in_channels, num_classes, channels=4, cells=1)


def tiny_graph() -> nx.DiGraph:
    """input -> conv -> bn -> relu -> pool -> linear -> output."""
    G = nx.DiGraph()
    G.add_node("in", op="input", channels=2)
    G.add_node("c", op="conv", channels=4, kernel=3)
    G.add_node("b", op="bn")
    G.add_node("r", op="relu")
    G.add_node("p", op="global_pool")
    G.add_node("l", op="linear", channels=3)
    G.add_node("out", op="output")
    nx.add_path(G, ["in", "c", "b", "r", "p", "l", "out"])
    return G


@pytest.fixture(scope="session")
def mnist1d():
    from hypernas.data import load_dataset

    return load_dataset("mnist1d")


def fit_config(**options):
    """A FitConfig from flat options, the hypernetwork's shape among them, as TOML and flags give them."""
    from hypernas.config import FitConfig
    from hypernas.options import build

    return build(FitConfig, options)


def fails_cleanly(argv: list, capsys, *expected: str) -> str:
    """Run the CLI; it must exit 1 with exactly one stderr line holding every `expected` text."""
    from hypernas.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("hypernas: warning: ")
             and not re.match(r"hypernas: .*: read [\d,]+ samples as ", line)  # what was read, said beside
             and not re.match(r"[\w ]+: +\d+%\|", line)]  # a progress bar (tqdm) of the work before the error
    assert len(lines) == 1 and lines[0].startswith("hypernas: error: ") and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


@contextlib.contextmanager
def tmpfs(path, size: str):
    """A small disk of its own mounted at `path` (made if need be), to fill up; skips where this
    machine cannot mount one (no root)."""
    path.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                      check=False).returncode:
        pytest.skip("this machine cannot mount a tmpfs")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
