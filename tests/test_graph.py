"""The validator, JSON round trips, the canonical hash, and costs computed without torch."""

from __future__ import annotations

import json

import networkx as nx
import pytest
from conftest import DEAD_CELL, GOOD_CELL, small_nb201, tiny_graph

from hypernas.compile import compile_graph
from hypernas.errors import GraphError
from hypernas.graph import canonical_hash, flops, from_json, is_degenerate, param_count, to_json, validate
from hypernas.ops import Shape, get_op, list_ops
from hypernas.spaces import get_space


def test_validate_returns_shapes_in_execution_order():
    info = validate(tiny_graph())
    assert [n.name for n in info.nodes] == ["in", "c", "b", "r", "p", "l", "out"]
    assert info.nodes[1].shape == Shape(4, 1)
    assert info.nodes[4].shape == Shape(4, None)
    assert (info.in_channels, info.num_classes, info.degenerate) == (2, 3, False)


def test_cycle_is_rejected_with_a_node_name():
    G = tiny_graph()
    G.add_edge("r", "c")
    with pytest.raises(GraphError, match="cycle") as err:
        validate(G)
    assert err.value.node in {"c", "b", "r"}


def test_unknown_op_names_the_node_and_suggests():
    G = tiny_graph()
    G.nodes["r"]["op"] = "rellu"
    with pytest.raises(GraphError, match=r"node 'r'.*unknown op 'rellu'.*'relu'"):
        validate(G)


def test_unknown_attribute_is_not_silently_dropped():
    G = tiny_graph()
    G.nodes["c"]["kernal"] = 5
    with pytest.raises(GraphError, match=r"node 'c'.*kernal"):
        validate(G)


def test_bad_attribute_type():
    G = tiny_graph()
    G.nodes["c"]["kernel"] = "3"
    with pytest.raises(GraphError, match=r"node 'c'.*integer"):
        validate(G)


def test_mismatched_shapes_into_a_sum():
    G = tiny_graph()
    G.add_node("c2", op="conv", channels=8)
    G.add_node("s", op="sum")
    G.remove_edge("b", "r")
    nx.add_path(G, ["in", "c2", "s"])
    nx.add_path(G, ["b", "s", "r"])
    with pytest.raises(GraphError, match=r"node 's'.*disagree"):
        validate(G)


def test_stride_mismatch_into_a_sum():
    G = tiny_graph()
    G.add_node("c2", op="conv", channels=4, stride=2)
    G.add_node("s", op="sum")
    G.remove_edge("b", "r")
    nx.add_path(G, ["in", "c2", "s"])
    nx.add_path(G, ["b", "s", "r"])
    with pytest.raises(GraphError, match=r"node 's'"):
        validate(G)


@pytest.mark.parametrize("mutate, message", [
    (lambda G: G.add_node("in2", op="input", channels=1) or G.add_edge("in2", "c"), "exactly one input|exactly one 'input'"),
    (lambda G: G.remove_node("out"), "exactly one 'output'"),
    (lambda G: G.add_node("x", op="relu") or G.add_edge("c", "x"), "dead end"),
    (lambda G: G.remove_node("p") or G.add_edge("r", "l"), "pooled vector"),
    (lambda G: G.remove_edge("l", "out") or G.add_edge("p", "out") or G.add_edge("l", "out"), "exactly one input"),
    (lambda G: G.nodes["c"].update(kernel=4), "odd"),
    (lambda G: G.nodes["c"].update(groups=3), "groups"),
    (lambda G: G.nodes["c"].pop("channels"), "needs attribute 'channels'"),
    (lambda G: G.nodes["c"].pop("op"), "no 'op'"),
])
def test_invalid_graphs(mutate, message):
    G = tiny_graph()
    mutate(G)
    with pytest.raises(GraphError, match=message):
        validate(G)


def test_not_a_digraph():
    with pytest.raises(GraphError, match="DiGraph"):
        validate(nx.Graph())
    with pytest.raises(GraphError, match="DiGraph"):
        validate(nx.MultiDiGraph(tiny_graph()))


def test_every_registered_op_is_listed_and_unknown_is_helpful():
    assert {"input", "output", "conv", "bn", "relu", "gelu", "sum", "concat", "avg_pool", "max_pool",
            "identity", "zero", "global_pool", "linear"} <= set(list_ops())
    assert list_ops("*pool") == ["avg_pool", "global_pool", "max_pool"]
    with pytest.raises(KeyError, match="'conv'"):
        get_op("conf")


def test_degenerate_cell_is_valid_but_flagged():
    assert is_degenerate(small_nb201(DEAD_CELL))
    assert not is_degenerate(small_nb201(GOOD_CELL))


def test_json_round_trip_is_lossless():
    for G in [tiny_graph(), small_nb201(), get_space("macro").sample(3, 1, 10)]:
        H = from_json(to_json(G))
        assert nx.utils.graphs_equal(G, H)
        assert to_json(H) == to_json(G)


@pytest.mark.parametrize("text, message", [
    ("not json", "not a valid architecture JSON"),
    ('{"nodes": []}', "'nodes' and 'edges'"),
    ('[1, 2]', "'nodes' and 'edges'"),
    ('{"directed": false, "nodes": [], "edges": []}', "directed"),
])
def test_bad_json_is_rejected(text, message):
    with pytest.raises(GraphError, match=message):
        from_json(text)


def test_json_that_decodes_to_an_invalid_graph_is_rejected():
    data = json.loads(to_json(tiny_graph()))
    data["nodes"][1]["op"] = "teleport"
    with pytest.raises(GraphError, match="teleport"):
        from_json(json.dumps(data))


def test_hash_ignores_node_names_and_insertion_order():
    G = small_nb201()
    H = nx.relabel_nodes(G, {n: f"x{i}" for i, n in enumerate(reversed(list(G)))})
    H2 = nx.DiGraph()
    H2.add_nodes_from(reversed(list(H.nodes(data=True))))
    H2.add_edges_from(reversed(list(H.edges(data=True))))
    assert canonical_hash(G) == canonical_hash(H) == canonical_hash(H2)


def test_equivalent_nb201_strings_collide_and_different_ones_do_not():
    # skip then conv equals conv applied to the input directly, and sums commute.
    a = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"
    b = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|"  # different: conv then identity
    c = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"
    assert canonical_hash(small_nb201(a)) == canonical_hash(small_nb201(c))
    assert canonical_hash(small_nb201(a)) != canonical_hash(small_nb201(GOOD_CELL))
    # x + x is not x: multiplicity counts.
    d = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    e = "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"
    assert canonical_hash(small_nb201(d)) != canonical_hash(small_nb201(e))
    assert canonical_hash(small_nb201(b)) != canonical_hash(small_nb201(GOOD_CELL))


def test_all_degenerate_cells_share_one_hash():
    other_dead = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|"
    assert canonical_hash(small_nb201(DEAD_CELL)) == canonical_hash(small_nb201(other_dead))


@pytest.mark.parametrize("ndim, make", [(1, tiny_graph), (2, tiny_graph), (1, small_nb201), (2, small_nb201),
                                        (1, lambda: get_space("macro").sample(1, 1, 10))])
def test_param_count_matches_torch(ndim, make):
    G = make()
    model = compile_graph(G, ndim)
    assert param_count(G, ndim) == sum(p.numel() for p in model.parameters())


def test_flops_of_a_known_network():
    # conv: 4 out x 2 in x 3 taps x 10 positions; linear: 3 x 4.
    assert flops(tiny_graph(), (10,)) == 4 * 2 * 3 * 10 + 3 * 4
    # a stride-2 conv halves positions (ceil): 7 -> 4
    G = tiny_graph()
    G.nodes["c"]["stride"] = 2
    assert flops(G, (7,)) == 4 * 2 * 3 * 4 + 3 * 4
    assert flops(G, (7, 7)) == 4 * 2 * 9 * 16 + 3 * 4
