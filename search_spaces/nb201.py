"""NAS-Bench-201: the classic cell space (Dong & Yang, ICLR 2020), exactly as published.

A cell has 4 nodes (0 = input, 3 = output) and 6 edges i->j (i < j); each node is the sum
of its incoming edge ops. Ops: `none` (zero), `skip_connect` (identity), `nor_conv_1x1`
and `nor_conv_3x3` (ReLU -> Conv -> BN), `avg_pool_3x3` (stride 1, padding excluded).
String form: `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`, edges (0,1), (0,2), (1,2), (0,3), (1,3), (2,3).

Skeleton: stem conv3 + BN; three stages of `cells` cells at C, 2C, 4C channels, joined by
residual reduction blocks; head BN, ReLU, global pool, linear.

Usage:
    from search_spaces import nb201
    G = nb201.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
                          in_channels=1, num_classes=10, channels=8, cells=1)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import networkx as nx

from hypernas.errors import SpaceError, shown
from hypernas.spaces import Sketch, Space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # the string's order
Cell = tuple[str, str, str, str, str, str]  # one op per edge, in EDGES order


def to_string(cell: Cell) -> str:
    """`|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` for a cell given in EDGES order."""
    ops = dict(zip(EDGES, cell))
    return "+".join("|" + "|".join(f"{ops[i, j]}~{i}" for i in range(j)) + "|" for j in (1, 2, 3))


def parse_string(text: str) -> Cell:
    """The cell of an NB201 string; a malformed string raises `SpaceError` saying why."""
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise SpaceError(f"an NB201 string has 3 '+'-separated nodes, got {len(nodes)}: {shown(text)}")
    ops = {}
    for j, node in enumerate(nodes, start=1):
        parts = node.strip("|").split("|")
        if not (node.startswith("|") and node.endswith("|")) or len(parts) != j:
            raise SpaceError(f"NB201 node {j} must be '|op~0|...|op~{j - 1}|' with {j} edge(s), got {shown(node)}")
        for i, part in enumerate(parts):
            op, _, src = part.partition("~")
            if op not in OPS:
                raise SpaceError(f"unknown NB201 op {shown(op)} in {shown(text)}; ops are {', '.join(OPS)}")
            if src != str(i):
                raise SpaceError(f"NB201 edge into node {j} must come from node {i}, got {shown(part)}")
            ops[i, j] = op
    return tuple(ops[e] for e in EDGES)


def all_cells() -> Iterator[Cell]:
    """All 5^6 = 15,625 cells."""
    return itertools.product(OPS, repeat=len(EDGES))


def unique_str(cell: Cell, full_zero: bool) -> str:
    """NB201's expression-tree key for a cell, the convention behind its published counts.

    `full_zero=False` is NB201's `to_unique_str(consider_zero=True)` (6,466 classes): a node
    is zero only when it is a single zero term. `full_zero=True` drops zero terms and makes a
    node zero when all its terms are (5,390 classes; the 341 dead cells share one).
    Unlike `canonical_hash`, the tree form ignores weight sharing between shared nodes.
    """
    ops = dict(zip(EDGES, cell))
    nodes = {0: "0"}
    for j in (1, 2, 3):
        terms = []
        for i in range(j):
            op, src = ops[i, j], nodes[i]
            if op == "none" or src == "#":
                if not full_zero:
                    terms.append("#")
            else:
                terms.append(src if op == "skip_connect" else f"({src})@{op}")
        nodes[j] = "+".join(sorted(terms)) if terms else "#"
    return nodes[3]


def _relu_conv_bn(G: nx.DiGraph, src: str, name: str, channels: int, kernel: int, stride: int = 1) -> str:
    G.add_node(f"{name}_relu", op="relu")
    G.add_node(f"{name}_conv", op="conv", channels=channels, kernel=kernel, stride=stride)
    G.add_node(f"{name}_bn", op="bn")
    nx.add_path(G, [src, f"{name}_relu", f"{name}_conv", f"{name}_bn"])
    return f"{name}_bn"


def _edge_op(G: nx.DiGraph, src: str, name: str, op: str, channels: int) -> str:
    if op == "none":
        G.add_node(name, op="zero")
    elif op == "skip_connect":
        G.add_node(name, op="identity")
    elif op == "avg_pool_3x3":
        G.add_node(name, op="avg_pool", kernel=3, stride=1)
    else:
        return _relu_conv_bn(G, src, name, channels, kernel=1 if op == "nor_conv_1x1" else 3)
    G.add_edge(src, name)
    return name


def _cell(G: nx.DiGraph, src: str, name: str, cell: Cell, channels: int) -> str:
    nodes = {0: src}
    ops = dict(zip(EDGES, cell))
    for j in (1, 2, 3):
        G.add_node(f"{name}_n{j}", op="sum")
        for i in range(j):
            G.add_edge(_edge_op(G, nodes[i], f"{name}_e{i}{j}", ops[i, j], channels), f"{name}_n{j}")
        nodes[j] = f"{name}_n{j}"
    return nodes[3]


def _reduction(G: nx.DiGraph, src: str, name: str, channels: int) -> str:
    """NB201's ResNet basic block with stride 2; the shortcut is AvgPool(2) then a 1x1 conv."""
    main = _relu_conv_bn(G, src, f"{name}_a", channels, kernel=3, stride=2)
    main = _relu_conv_bn(G, main, f"{name}_b", channels, kernel=3)
    G.add_node(f"{name}_pool", op="avg_pool", kernel=2, stride=2)
    G.add_node(f"{name}_proj", op="conv", channels=channels, kernel=1)
    G.add_node(f"{name}_sum", op="sum")
    nx.add_path(G, [src, f"{name}_pool", f"{name}_proj", f"{name}_sum"])
    G.add_edge(main, f"{name}_sum")
    return f"{name}_sum"


def build(cell: Cell, in_channels: int, num_classes: int, channels: int = 16, cells: int = 5) -> nx.DiGraph:
    """The full NB201 network for `cell`: width `channels` (C) and `cells` per stage (N)."""
    if channels < 1 or cells < 1:
        raise SpaceError(f"nb201 needs channels >= 1 and cells >= 1, got channels={channels}, cells={cells}")
    G = nx.DiGraph(arch=to_string(cell))
    G.add_node("input", op="input", channels=in_channels)
    G.add_node("stem_conv", op="conv", channels=channels, kernel=3)
    G.add_node("stem_bn", op="bn")
    nx.add_path(G, ["input", "stem_conv", "stem_bn"])
    x = "stem_bn"
    for stage in range(3):
        width = channels * 2**stage
        if stage:
            x = _reduction(G, x, f"r{stage}", width)
        for k in range(cells):
            x = _cell(G, x, f"s{stage}c{k}", cell, width)
    G.add_node("head_bn", op="bn")
    G.add_node("head_relu", op="relu")
    G.add_node("head_pool", op="global_pool")
    G.add_node("head_linear", op="linear", channels=num_classes)
    G.add_node("output", op="output")
    nx.add_path(G, [x, "head_bn", "head_relu", "head_pool", "head_linear", "output"])
    return G


def suggest(trial, *, in_channels: int, num_classes: int, channels: int = 16, cells: int = 5) -> nx.DiGraph:
    """One categorical choice per edge, named `edge_i_j`."""
    cell = tuple(trial.suggest_categorical(f"edge_{i}_{j}", OPS) for i, j in EDGES)
    return build(cell, in_channels, num_classes, channels, cells)


def from_string(text: str, in_channels: int, num_classes: int, channels: int = 16, cells: int = 5) -> nx.DiGraph:
    """The network of an NB201 string."""
    return build(parse_string(text), in_channels, num_classes, channels, cells)


def format_graph(G: nx.DiGraph) -> str:
    """The NB201 string a graph was built from."""
    if "arch" not in G.graph:
        raise SpaceError("this graph carries no NB201 string (graph attribute 'arch')")
    return G.graph["arch"]


SHORT = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv 1x1", "nor_conv_3x3": "conv 3x3",
         "avg_pool_3x3": "avg pool 3x3"}


def sketch(G: nx.DiGraph) -> Sketch:
    """The cell as NB201's papers draw it: 4 nodes, 6 labelled edges; the skeleton in one line."""
    cell = parse_string(format_graph(G))
    width = G.nodes["stem_conv"]["channels"]
    cells = len({str(n).split("_")[0] for n in G if str(n).startswith("s0c")})
    classes = G.nodes["head_linear"]["channels"]
    caption = (f"skeleton: stem conv 3x3 ({width} ch), 3 stages of {cells} cell{'s' * (cells > 1)} at "
               f"{width}/{2 * width}/{4 * width} channels with residual reductions, pool, linear ({classes} classes)")
    return Sketch("cell", ["0", "1", "2", "3"], [(i, j, SHORT[op]) for (i, j), op in zip(EDGES, cell)], caption)


def enumerate_graphs(in_channels: int, num_classes: int, channels: int = 16, cells: int = 5) -> Iterator[nx.DiGraph]:
    """Every one of the 15,625 networks, in `all_cells()` order."""
    for cell in all_cells():
        yield build(cell, in_channels, num_classes, channels, cells)


SPACE = Space(
    name="nb201",
    suggest=suggest,
    description="NAS-Bench-201 cells (6 edges, 5 ops) in the published ResNet-like skeleton",
    size=len(OPS) ** len(EDGES),
    options={"channels": 16, "cells": 5},
    parse=from_string,
    format=format_graph,
    enumerate=enumerate_graphs,
    grid={f"edge_{i}_{j}": list(OPS) for i, j in EDGES},
    sketch=sketch,
)
