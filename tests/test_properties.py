"""Property tests: whatever graph or JSON comes in, hypernas either accepts it (and then it
compiles and runs, giving logits of the declared number of classes) or rejects it with a
`HypernasError`. No other exception may escape `validate` or `from_json`.

Inputs are random DAGs and non-DAGs (op names from the registry and junk, attributes of
every type, random channels, edges and ports), random JSON values, and real architectures'
node-link JSON with random mutations. Derandomized, so CI runs the same examples each time.
"""

from __future__ import annotations

import copy
import itertools
import json
import math

import networkx as nx
import pytest
import torch
from conftest import GOOD_CELL, small_nb201, tiny_graph
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hypernas.compile import compile_graph
from hypernas.errors import HypernasError
from hypernas.graph import from_json, to_json, validate
from hypernas.ops import OPS, RunContext, list_ops
from hypernas.spaces import get_space

SETTINGS = settings(max_examples=500, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Spatial size of the tiny inputs by dimension: even (where pooling windows can overshoot) and
# odd (where strides must round up, ceil(L / s)).
LENGTH = {1: 8, 2: 5}

OP_NAMES = list_ops()
ATTR_NAMES = sorted({a for op in OPS.values() for a in op.attrs})
# Node names that cannot name a compiled module's parts: empty, dotted, torch module attributes.
AWKWARD_NAMES = ["", "a.b", ".", "keys", "items", "forward", "training", "to", "_modules", "weight", "0"]

junk_scalar = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.integers(-3, 40),
                        st.text(max_size=4), st.just(2**70))
junk = st.recursive(junk_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=3), c, max_size=3),
                    max_leaves=6)
op_name = st.one_of(st.sampled_from(OP_NAMES), st.sampled_from(OP_NAMES).map(lambda s: s + "x"), junk_scalar)
attr_value = st.one_of(st.integers(-2, 12), st.integers(1, 8), st.booleans(), junk)
node_name = st.one_of(st.integers(-3, 30), st.text(alphabet="abc._", max_size=3), st.sampled_from(AWKWARD_NAMES))
valid_name = st.one_of(st.integers(-3, 30), st.text(alphabet="abc_", min_size=1, max_size=3))
port = st.one_of(st.integers(-2, 4), junk_scalar)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Thousands of tiny forward passes: threads only add overhead (and contend with other jobs)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def node_outputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    """Every node's output in execution order, as `Program.run` computes them (it keeps the last)."""
    tensors = {k.removeprefix("nodes."): t for k, t in itertools.chain(model.named_parameters(), model.named_buffers())}
    ctx = RunContext(model.ndim)
    values: list[torch.Tensor] = []
    for key, op, attrs, inputs, names in model.program.steps:
        p = {n: tensors[f"{key}.{n}"] for n in names if f"{key}.{n}" in tensors}
        values.append(op.forward(attrs, [values[i] for i in inputs], p, ctx) if inputs else x)
    return values


def check_accepted(G: nx.DiGraph, ndims: tuple[int, ...] = (1, 2)) -> None:
    """An accepted graph compiles and maps a tiny input of its channels to its classes' logits,
    and every node's output has the shape `validate` promised: (channels, ceil(L / stride))."""
    info = validate(G)
    for ndim in ndims:
        length = LENGTH[ndim]
        model = compile_graph(G, ndim).eval()
        x = torch.randn(2, info.in_channels, *([length] * ndim))
        with torch.no_grad():
            logits = model(x)
            values = node_outputs(model, x)
        assert logits.shape == (2, info.num_classes)
        for node, value in zip(info.nodes, values):
            size = [] if node.shape.stride is None else [math.ceil(length / node.shape.stride)] * ndim
            assert tuple(value.shape) == (2, node.shape.channels, *size), node


def accepted_or_rejected(fn, arg, ndims: tuple[int, ...] = (1, 2)) -> bool:
    """True if `fn` accepted `arg` (then the graph must run), False if it raised HypernasError."""
    try:
        G = fn(arg)
    except HypernasError:
        return False
    check_accepted(G if isinstance(G, nx.DiGraph) else arg, ndims)
    return True


# ---- random graphs ---------------------------------------------------------------------------


@st.composite
def junk_graphs(draw) -> nx.DiGraph:
    """Anything: random nodes with random ops and attributes, random edges (cycles included)."""
    G = nx.DiGraph()
    names = draw(st.lists(node_name, min_size=1, max_size=8, unique=True))
    for n in names:
        attrs = draw(st.dictionaries(st.sampled_from(ATTR_NAMES + ["kernal", "op"]), attr_value, max_size=3))
        if draw(st.booleans()) or "op" not in attrs:
            attrs["op"] = draw(op_name)
        G.add_node(n, **attrs)
    for u, v in draw(st.lists(st.tuples(st.sampled_from(names), st.sampled_from(names)), max_size=12)):
        G.add_edge(u, v, **({"port": draw(port)} if draw(st.booleans()) else {}))
    return G


SPATIAL_OPS = ["conv", "conv", "conv", "bn", "relu", "gelu", "silu", "relu6", "identity", "zero", "avg_pool",
               "avg_pool", "max_pool", "max_pool", "sum", "sum", "concat", "concat"]


@st.composite
def plausible_graphs(draw) -> nx.DiGraph:
    """Mostly valid networks: input, random spatial layers wired to earlier layers, a head.

    Attributes come from small ranges that include invalid values (even kernels, zero
    channels, groups that do not divide), so some graphs are rejected for shapes."""
    G = nx.DiGraph()
    names = draw(st.lists(valid_name, min_size=12, max_size=12, unique_by=str))
    it = iter(names)
    inp = next(it)
    G.add_node(inp, op="input", channels=draw(st.integers(1, 4)))
    layers = [inp]
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(SPATIAL_OPS))
        attrs = {}
        if op == "conv":
            attrs = {"channels": draw(st.integers(0, 8)), "kernel": draw(st.sampled_from([1, 3, 5, 2, 0])),
                     "stride": draw(st.sampled_from([1, 1, 2, 3])), "dilation": draw(st.sampled_from([1, 1, 2])),
                     "groups": draw(st.sampled_from([1, 1, 2])), "bias": draw(st.booleans())}
            attrs = {k: v for k, v in attrs.items() if k == "channels" or draw(st.booleans())}
        elif op in ("avg_pool", "max_pool"):
            k = draw(st.sampled_from([1, 2, 3, 4, 5, 6]))  # an even kernel must equal its stride
            attrs = {"kernel": k, "stride": draw(st.sampled_from([k, k, k, 1, 2, 3] if k % 2 == 0 else [1, 2, 3]))}
        name = next(it)
        G.add_node(name, op=op, **attrs)
        n_in = min(draw(st.integers(1, 3)), len(layers)) if op in ("sum", "concat") else 1
        for i, src in enumerate(draw(st.lists(st.sampled_from(layers), min_size=n_in, max_size=n_in, unique=True))):
            G.add_edge(src, name, **({"port": i} if op == "concat" else {}))
        layers.append(name)
    # Whatever feeds nothing yet is summed into the last layer where it can be (else: a dead end).
    last = layers[-1]
    loose = [n for n in layers[:-1] if G.out_degree(n) == 0]
    if loose:
        merge = next(it)
        G.add_node(merge, op=draw(st.sampled_from(["sum", "concat"])))
        for i, n in enumerate([last] + loose):
            G.add_edge(n, merge, port=i)
        last = merge
    pool, lin, out = next(it), next(it), next(it)
    G.add_node(pool, op="global_pool")
    G.add_node(lin, op="linear", channels=draw(st.integers(1, 5)), bias=draw(st.booleans()))
    G.add_node(out, op="output")
    nx.add_path(G, [last, pool, lin, out])
    if draw(st.integers(0, 3)) == 0:  # one random corruption
        what = draw(st.sampled_from(["edge", "attr", "op", "remove", "rename"]))
        nodes = list(G)
        if what == "edge":
            G.add_edge(draw(st.sampled_from(nodes)), draw(st.sampled_from(nodes)), port=draw(port))
        elif what == "attr":
            G.nodes[draw(st.sampled_from(nodes))][draw(st.sampled_from(ATTR_NAMES))] = draw(attr_value)
        elif what == "op":
            G.nodes[draw(st.sampled_from(nodes))]["op"] = draw(op_name)
        elif what == "remove":
            G.remove_node(draw(st.sampled_from(nodes)))
        else:
            new = draw(st.sampled_from(AWKWARD_NAMES))
            if new not in G:
                G = nx.relabel_nodes(G, {draw(st.sampled_from(nodes)): new})
    return G


ACCEPTED = {"plausible": 0}


@SETTINGS
@given(junk_graphs())
def test_validate_accepts_or_rejects_random_graphs(G):
    accepted_or_rejected(validate, G)


@SETTINGS
@given(plausible_graphs())
def test_validate_accepts_or_rejects_plausible_graphs(G):
    ACCEPTED["plausible"] += accepted_or_rejected(validate, G)


def test_the_graph_properties_saw_accepted_graphs():
    """Guards the generators: a property that only ever saw rejections would prove little."""
    if not ACCEPTED["plausible"]:
        pytest.skip("run together with the property tests above")
    assert ACCEPTED["plausible"] >= 100


# ---- random JSON -------------------------------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers(-3, 40) | st.text(max_size=6),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=12,
)
node_link_keys = st.sampled_from(["nodes", "edges", "directed", "multigraph", "graph", "id", "source", "target",
                                  "op", "port", *ATTR_NAMES])


@SETTINGS
@given(st.one_of(json_values, st.dictionaries(node_link_keys, json_values, max_size=5)),
       st.sampled_from(["decoded", "text", "text-cut"]))
@example("[" * 100_000, "decoded")  # nesting deeper than the JSON parser's recursion
@example({"nodes": [{"id": 1, "op": "input"}], "edges": [], "graph": "ab"}, "decoded")
def test_from_json_accepts_or_rejects_random_json(value, form):
    text = value if form == "decoded" else json.dumps(value)
    if form == "text-cut":
        text = text[: len(text) // 2]
    accepted_or_rejected(from_json, text)


REAL = [to_json(G) for G in (tiny_graph(), small_nb201(GOOD_CELL), get_space("tiny_cnn").sample(3, 2, 4),
                             get_space("macro").sample(1, 1, 3, width=0.5, stem=4, head=8))]


def _paths(value, prefix=()):
    """Every path (tuple of keys and indices) into a decoded JSON value, the root included."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _mutate(doc, data) -> object:
    path = data.draw(st.sampled_from(list(_paths(doc))))
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "duplicate", "add_key", "int"]))
    if not path:
        return data.draw(json_values) if action == "replace" else doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if action == "replace":
        parent[key] = data.draw(json_values)
    elif action == "int":
        parent[key] = data.draw(st.integers(-2, 12))
    elif action == "delete":
        del parent[key]
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif action == "add_key" and isinstance(parent[key], dict):
        parent[key][data.draw(node_link_keys)] = data.draw(json_values)
    return doc


@SETTINGS
@given(st.sampled_from(range(len(REAL))), st.integers(1, 3), st.booleans(), st.data())
def test_from_json_accepts_or_rejects_mutated_architectures(which, mutations, as_text, data):
    doc = json.loads(REAL[which])
    for _ in range(mutations):
        doc = _mutate(doc, data)
    accepted_or_rejected(from_json, json.dumps(doc) if as_text else copy.deepcopy(doc), ndims=(1,))


def test_real_architectures_survive_the_round_trip():
    for text in REAL:
        check_accepted(from_json(text))
