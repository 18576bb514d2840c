"""Architecture graphs: the schema, the one validator, JSON, the canonical hash, and costs.

An architecture is a plain `networkx.DiGraph`. Each node has an `op` attribute naming a
registered op (see `hypernas.ops`) plus that op's attributes, e.g.
`G.add_node("c1", op="conv", channels=16, kernel=3)`. There is exactly one `input` node
(with `channels`) and one `output` node (fed with class logits). Edges into a `concat`
carry a `port` attribute that orders its inputs. Graph attributes (`G.graph`) are free-form
labels, e.g. `arch`, an NB201 string; they survive JSON but do not change the network.

Usage:
    info = validate(G)            # raises GraphError naming the node, or returns shapes
    params = param_count(G, ndim=1)
    key = canonical_hash(G)
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
from dataclasses import dataclass, field
from typing import Any, Hashable

import networkx as nx
import torch

from hypernas.errors import GraphError, HypernasError
from hypernas.ops import Op, Shape, get_op, spatial_numel

_TORCH_NAMES = frozenset(dir(torch.nn.ModuleDict()))  # `training`, `forward`, `keys`, ...


@dataclass(frozen=True)
class NodeInfo:
    """One validated node: its op, resolved attributes, ordered inputs and shapes."""

    name: Hashable
    op: Op
    attrs: dict[str, Any]
    inputs: tuple[Hashable, ...]
    in_shapes: tuple[Shape, ...]
    shape: Shape


@dataclass(frozen=True)
class GraphInfo:
    """What `validate` learns: nodes in execution order, and whether the output is dead."""

    nodes: tuple[NodeInfo, ...]
    degenerate: bool  # the output does not depend on the input (e.g. every path zeroed)
    # The graph's free-form labels (`G.graph`, e.g. an NB201 `arch` string): a scorer that
    # looks architectures up by name, like the benchmark table oracle, needs them.
    labels: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def in_channels(self) -> int:
        return self.nodes[0].shape.channels

    @property
    def num_classes(self) -> int:
        return self.nodes[-1].shape.channels


def _ordered_inputs(G: nx.DiGraph, node: Hashable, rank: dict) -> tuple:
    """Inputs sorted by edge `port`, then by execution order (deterministic for sums)."""
    preds = list(G.predecessors(node))
    return tuple(sorted(preds, key=lambda p: (G.edges[p, node].get("port", 0), rank[p])))


def validate(G: Any) -> GraphInfo:
    """Check everything about an architecture graph; return its nodes with shapes.

    Raises `GraphError` (naming the node) for: not a DiGraph, a cycle, no or several
    input/output nodes, an unknown op or attribute, a wrong number of inputs, shapes
    that disagree along an edge, a port that is not an integer, or a node name that
    cannot name its weights (empty, dotted, a torch module attribute such as `training`,
    or the same text as another's). A graph whose output is cut off from its input is valid
    and comes back with `degenerate=True`.

    Usage: `validate(G).nodes[-1].shape  # Shape(channels=10, stride=None)`
    """
    if not isinstance(G, nx.DiGraph) or G.is_multigraph():
        raise GraphError(f"an architecture must be a networkx.DiGraph, got {type(G).__name__}")
    if G.number_of_nodes() == 0:
        raise GraphError("the graph is empty")
    if not nx.is_directed_acyclic_graph(G):
        cycle = nx.find_cycle(G)
        raise GraphError(f"the graph has a cycle: {' -> '.join(str(u) for u, _ in cycle)} -> {cycle[0][0]}", cycle[0][0])
    as_text: dict[str, Hashable] = {}
    for node, data in G.nodes(data=True):
        if "op" not in data:
            raise GraphError("has no 'op' attribute", node)
        try:
            get_op(data["op"])
        except HypernasError as err:
            raise GraphError(str(err), node) from None
        # Weights are named `<node>.<param>` and held by a torch module `nodes.<node>`: a name
        # must read as one distinct, dot-free word that torch modules do not already use.
        if not str(node) or "." in str(node):
            raise GraphError("a node name must be non-empty and contain no '.' (weights are named <node>.<param>)", node)
        if str(node) in _TORCH_NAMES:
            raise GraphError("this name is taken by torch module attributes (the weights live in nodes.<name>); "
                             "rename the node", node)
        if as_text.setdefault(str(node), node) is not node:
            raise GraphError(f"another node, {as_text[str(node)]!r}, has the same name as text; rename one", node)
    for u, v, data in G.edges(data=True):
        port = data.get("port", 0)
        if isinstance(port, bool) or not isinstance(port, int):
            raise GraphError(f"the edge from {u!r} has port {reprlib.repr(port)}; a port must be an integer", v)
    for role in ("input", "output"):
        found = [n for n, op in G.nodes(data="op") if op == role]
        if len(found) != 1:
            raise GraphError(f"a graph needs exactly one {role!r} node, found {len(found)}: {found}")

    order = list(nx.topological_sort(G))
    rank = {n: i for i, n in enumerate(order)}
    shapes: dict[Hashable, Shape] = {}
    infos = []
    for node in order:
        data = G.nodes[node]
        op = get_op(data["op"])
        inputs = _ordered_inputs(G, node, rank)
        n_in = len(inputs)
        if op.arity == "none" and n_in:
            raise GraphError(f"op {op.name!r} takes no inputs, has {n_in}", node)
        if op.arity == "one" and n_in != 1:
            raise GraphError(f"op {op.name!r} takes exactly one input, has {n_in}", node)
        if op.arity == "many" and n_in < 1:
            raise GraphError(f"op {op.name!r} needs at least one input, has none", node)
        if op.name != "output" and G.out_degree(node) == 0:
            raise GraphError("is a dead end: its result feeds nothing (only 'output' may be last)", node)
        try:
            attrs = op.resolve({k: v for k, v in data.items() if k != "op"})
            in_shapes = tuple(shapes[p] for p in inputs)
            shapes[node] = op.out_shape(attrs, list(in_shapes))
        except GraphError as err:
            raise GraphError(str(err), node) from None
        infos.append(NodeInfo(node, op, attrs, inputs, in_shapes, shapes[node]))
    constant = _constant_nodes(infos)
    return GraphInfo(tuple(infos), degenerate=infos[-1].name in constant, labels=dict(G.graph))


def _constant_nodes(infos: tuple[NodeInfo, ...] | list[NodeInfo]) -> set:
    """Nodes whose value cannot depend on the input: zeros, and whatever only they feed."""
    constant: set = set()
    for n in infos:
        if n.op.name == "zero" or (n.inputs and all(p in constant for p in n.inputs)):
            constant.add(n.name)
    return constant


def as_info(G: nx.DiGraph | GraphInfo) -> GraphInfo:
    """`validate(G)`, or `G` itself when it was validated already."""
    return G if isinstance(G, GraphInfo) else validate(G)


def is_degenerate(G: nx.DiGraph) -> bool:
    """True when the output is cut off from the input, so the network predicts a constant."""
    return validate(G).degenerate


# ---- JSON (node-link) ----------------------------------------------------------------------


def to_json(G: nx.DiGraph) -> str:
    """One-line node-link JSON; `from_json(to_json(G))` gives back an equal graph."""
    return json.dumps(nx.node_link_data(G, edges="edges"), separators=(",", ":"), sort_keys=True)


def from_json(text: str | dict) -> nx.DiGraph:
    """Parse node-link JSON (a string or an already-decoded dict) and validate it.

    Usage: `G = from_json(open("arch.json").read())`
    """
    try:
        data = json.loads(text) if isinstance(text, str) else text
        if not isinstance(data, dict) or "nodes" not in data or "edges" not in data:
            raise ValueError("expected an object with 'nodes' and 'edges'")
        if not data.get("directed", True) or data.get("multigraph", False):
            raise ValueError("expected a directed graph without parallel edges")
        if not isinstance(data.get("graph", {}), dict):
            raise ValueError("'graph' (the graph's labels) must be an object")
        G = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
    except RecursionError:
        raise GraphError("not a valid architecture JSON: nested too deeply") from None
    except Exception as err:  # node_link_graph raises whatever a malformed document provokes
        why = str(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {err}"
        raise GraphError(f"not a valid architecture JSON: {why}") from None
    validate(G)
    return G


# ---- canonical hash ------------------------------------------------------------------------


def _label(info: NodeInfo) -> str:
    return info.op.name + "".join(f";{k}={v}" for k, v in sorted(info.attrs.items()))


def simplify(G: nx.DiGraph | GraphInfo) -> nx.DiGraph:
    """The graph the canonical hash sees: same function family, redundancy removed.

    - Zeros propagate: a node fed only by constants is constant (see `is_degenerate`), and
      a sum drops its constant inputs. Exact for zeros; for BatchNorm on a zero input (a
      learned constant) it is the modelling choice NB201's "full" convention also makes.
    - Nodes that cannot reach the output are removed.
    - `identity` nodes and single-input sums are bypassed, and a sum that only feeds
      another sum is merged into it. Edges into sums count multiplicity (x + x != x).
    A degenerate graph simplifies to just its input and output, so all of them coincide.
    Pass a `GraphInfo` (from `validate`) instead of the graph to skip validating it again.
    """
    info = as_info(G)
    constant = _constant_nodes(info.nodes)
    S = nx.DiGraph()
    for n in info.nodes:
        S.add_node(n.name, label=_label(n), op=n.op.name, commutative=n.op.commutative)
        for port, p in enumerate(n.inputs):
            if n.op.name == "sum" and p in constant:
                continue
            S.add_edge(p, n.name, mult=1, port=0 if n.op.commutative else port)
    first, last = info.nodes[0].name, info.nodes[-1].name
    if info.degenerate:
        for n in list(S):
            if n not in (first, last):
                S.remove_node(n)
        S.add_edge(first, last, mult=1, port=0)
        return S
    S.remove_nodes_from(set(S) - nx.ancestors(S, last) - {last})

    changed = True
    while changed:
        changed = False
        for n in list(nx.topological_sort(S)):
            op = S.nodes[n]["op"]
            bypass = op == "identity" or (op == "sum" and S.in_degree(n) == 1)
            succs = list(S.successors(n))
            merge = op == "sum" and len(succs) == 1 and S.nodes[succs[0]]["op"] == "sum"
            if (bypass or merge) and _splice(S, n):
                changed = True
    return S


def _splice(S: nx.DiGraph, n: Hashable) -> bool:
    """Remove node `n`, wiring each input straight to each consumer. False if not possible."""
    preds, succs = list(S.predecessors(n)), list(S.successors(n))
    for s in succs:
        # Parallel edges only make sense into a sum (as multiplicity).
        if S.nodes[s]["op"] != "sum" and (len(preds) > 1 or S.has_edge(preds[0], s)):
            return False
    for s in succs:
        out = S.edges[n, s]
        for p in preds:
            mult = S.edges[p, n]["mult"] * out["mult"]
            if S.has_edge(p, s):
                S.edges[p, s]["mult"] += mult
            else:
                S.add_edge(p, s, mult=mult, port=out["port"])
    S.remove_node(n)
    return True


def _digest(*parts: str) -> str:
    return hashlib.blake2b("|".join(parts).encode(), digest_size=8).hexdigest()


def canonical_hash(G: nx.DiGraph | GraphInfo) -> str:
    """A hash equal for isomorphic architectures (after `simplify`), 16 hex characters.

    Weisfeiler-Lehman refinement specialised to DAGs: one pass in execution order hashes
    each node with the multiset of its inputs' hashes (so it sees everything upstream), one
    pass in reverse does the same downstream, and the two are combined; two such rounds
    let each node also see its siblings. That is WL run to convergence, in O(edges) per
    round instead of O(edges x depth). Isomorphic graphs always collide; non-isomorphic
    ones could in theory (as for any WL hash), which the NB201 class count test guards.

    Usage: `canonical_hash(nb201.from_string(s1, 1, 10)) == canonical_hash(nb201.from_string(s2, 1, 10))`
    """
    S = simplify(G)
    order = list(nx.topological_sort(S))
    key = {(u, v): f"{d['mult']}:{d['port']}" for u, v, d in S.edges(data=True)}
    label = {n: _digest(S.nodes[n]["label"]) for n in order}
    for _ in range(2):
        up: dict = {}
        for n in order:
            up[n] = _digest(label[n], *sorted(key[p, n] + up[p] for p in S.predecessors(n)))
        down: dict = {}
        for n in reversed(order):
            down[n] = _digest(label[n], *sorted(key[n, s] + down[s] for s in S.successors(n)))
        label = {n: _digest(up[n], down[n]) for n in order}
    return _digest(*sorted(label.values()))


# ---- costs counted from the graph, no network built ----------------------------------------


def param_count(G: nx.DiGraph | GraphInfo, ndim: int) -> int:
    """Trainable parameters of the compiled model for `ndim`-D data (1 = sequences, 2 = images)."""
    return sum(
        math.prod(shape) for n in as_info(G).nodes for shape in n.op.param_shapes(n.attrs, list(n.in_shapes), ndim).values()
    )


def activation_numel(G: nx.DiGraph | GraphInfo, input_size: tuple[int, ...]) -> int:
    """Values in all of one sample's node outputs: what training keeps for its backward pass."""
    return sum(n.shape.channels * spatial_numel(input_size, n.shape.stride) for n in as_info(G).nodes)


def flops(G: nx.DiGraph | GraphInfo, input_size: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass for one sample of spatial size `input_size`.

    Counts conv and linear layers, the convention of NAS-Bench-201 and thop.
    Usage: `flops(G, (40,))` for MNIST-1D, `flops(G, (32, 32))` for CIFAR-10.
    """
    ndim = len(input_size)
    return sum(
        n.op.macs(n.attrs, list(n.in_shapes), n.shape, spatial_numel(input_size, n.shape.stride), ndim)
        for n in as_info(G).nodes
    )
