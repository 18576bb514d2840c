"""Search spaces: NB201 exactness, the macro space's dynamic shapes, users' own spaces, seeds."""

from __future__ import annotations

import collections
import random
import textwrap

import networkx as nx
import optuna
import pytest
from conftest import GOOD_CELL

from hypernas.errors import SpaceError, UnknownNameError
from hypernas.graph import canonical_hash, param_count, simplify, validate
from hypernas.spaces import RandomTrial, get_space, list_spaces
from search_spaces import nb201


def test_nb201_string_round_trip():
    cell = nb201.parse_string(GOOD_CELL)
    assert cell == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_3x3", "nor_conv_3x3")
    assert nb201.to_string(cell) == GOOD_CELL
    G = nb201.from_string(GOOD_CELL, 1, 10, channels=8, cells=1)
    assert get_space("nb201").describe(G) == GOOD_CELL


@pytest.mark.parametrize("bad, message", [
    ("|nor_conv_3x3~0|", "3 '\\+'-separated"),
    ("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NB201 op 'conv'"),
    ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "from node 0"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2"),
])
def test_nb201_bad_strings(bad, message):
    with pytest.raises(SpaceError, match=message):
        nb201.parse_string(bad)


def test_nb201_skeleton_is_configurable_and_defaults_to_the_original():
    assert get_space("nb201").options == {"channels": 16, "cells": 5}
    G = nb201.from_string(GOOD_CELL, 3, 10)  # C=16, N=5 as published
    assert sum(1 for n in G if n.endswith("_n3")) == 15
    assert validate(G).nodes[-2].in_shapes[0].channels == 64
    # NB201's published CIFAR-10 sizes span 0.073M (no convs) to 1.531546M (all 3x3 convs).
    assert param_count(nb201.build(("nor_conv_3x3",) * 6, 3, 10), 2) == 1_531_546
    assert param_count(nb201.build(("none",) * 6, 3, 10), 2) == 73_306


@pytest.mark.slow  # a minute: every one of the 15,625 cells built and hashed
def test_nb201_enumerates_all_cells_into_the_documented_classes():
    """15,625 cells. The graph hash gives 5,425 classes; NB201's tree conventions give 6,466 and 5,390.

    The graph count differs from the full-zero tree count because the tree form ignores
    weight sharing (it merges networks with different parameter counts) but splits sums
    that differ only by bracketing. Members of a class must have isomorphic simplified graphs.
    """
    cells = list(nb201.all_cells())
    assert len(cells) == 15_625 == get_space("nb201").size
    assert len({nb201.unique_str(c, full_zero=False) for c in cells}) == 6_466
    assert len({nb201.unique_str(c, full_zero=True) for c in cells}) == 5_390
    classes = collections.defaultdict(list)
    dead = 0
    for cell, G in zip(cells, nb201.enumerate_graphs(1, 10, channels=2, cells=1)):
        classes[canonical_hash(G)].append(G)
        dead += validate(G).degenerate
    assert dead == 341
    assert len(classes) == 5_425
    # The hash claims isomorphism: check it exactly on a sample of classes.
    for members in random.Random(0).sample([m for m in classes.values() if len(m) > 1], 150):
        a, b = simplify(members[0]), simplify(members[-1])
        assert nx.is_isomorphic(a, b, node_match=lambda x, y: x["label"] == y["label"],
                                edge_match=lambda x, y: (x["mult"], x["port"]) == (y["mult"], y["port"]))


def test_random_sampling_is_deterministic_under_a_seed():
    space = get_space("macro")
    a = [space.describe(space.sample(random.Random(7), 1, 10)) for _ in range(1)]
    b = [space.describe(space.sample(random.Random(7), 1, 10)) for _ in range(1)]
    c = [space.describe(space.sample(random.Random(8), 1, 10))]
    assert a == b and a != c


def test_macro_architectures_differ_in_depth_and_shapes():
    space = get_space("macro")
    graphs = [space.sample(s, 1, 10) for s in range(30)]
    assert len({G.number_of_nodes() for G in graphs}) > 5
    assert len({param_count(G, 1) for G in graphs}) > 20
    assert any(n.startswith("s0b2") for G in graphs for n in G)  # three blocks in a stage occur
    assert any(G.nodes[n]["op"] == "sum" for G in graphs for n in G)  # skips where shapes allow


def test_spaces_work_with_optuna_define_by_run():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = get_space("macro")
    trial = study.ask()
    G = space.build(trial, 1, 10)
    validate(G)
    blocks = [trial.params[f"s{s}_blocks"] for s in range(3)]
    assert sum(1 for k in trial.params if k.endswith("_kernel")) == sum(blocks)


def test_random_trial_records_choices():
    t = RandomTrial(0)
    assert t.suggest_categorical("a", [1, 2, 3]) in (1, 2, 3)
    assert 2 <= t.suggest_int("b", 2, 4) <= 4
    assert set(t.params) == {"a", "b"}


def test_builtin_spaces_listed():
    assert {s.name for s in list_spaces()} == {"nb201", "macro", "tiny_cnn"}


def test_unknown_space_suggests():
    with pytest.raises(UnknownNameError, match="nb201"):
        get_space("nb210")


def test_unknown_space_option_is_an_error():
    with pytest.raises(SpaceError, match="does not take option"):
        get_space("macro").sample(0, 1, 10, channels=8)


def test_user_space_from_a_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent('''
        import networkx as nx
        def chain(trial, *, in_channels, num_classes, width=4):
            """A conv chain."""
            G = nx.DiGraph()
            k = trial.suggest_categorical("k", [1, 3])
            G.add_node("i", op="input", channels=in_channels)
            G.add_node("c", op="conv", channels=width, kernel=k)
            G.add_node("p", op="global_pool")
            G.add_node("l", op="linear", channels=num_classes)
            G.add_node("o", op="output")
            nx.add_path(G, ["i", "c", "p", "l", "o"])
            return G
        def broken(trial, *, in_channels, num_classes):
            raise RuntimeError("boom")
        def not_a_graph(trial, *, in_channels, num_classes):
            return [1, 2]
        def invalid(trial, *, in_channels, num_classes):
            G = chain(trial, in_channels=in_channels, num_classes=num_classes)
            G.nodes["c"]["op"] = "cnov"
            return G
    '''))
    space = get_space(f"{path}:chain")
    assert space.options == {"width": 4} and space.description == "A conv chain."
    G = space.sample(0, 2, 5, width=6)
    assert validate(G).num_classes == 5
    with pytest.raises(SpaceError, match="RuntimeError: boom"):
        get_space(f"{path}:broken").sample(0, 1, 10)
    with pytest.raises(SpaceError, match="returned list"):
        get_space(f"{path}:not_a_graph").sample(0, 1, 10)
    with pytest.raises(SpaceError, match="invalid graph.*cnov"):
        get_space(f"{path}:invalid").sample(0, 1, 10)
    with pytest.raises(SpaceError, match="no function 'nope'.*chain"):
        get_space(f"{path}:nope")
    with pytest.raises(SpaceError, match="does not exist"):
        get_space(f"{tmp_path}/missing.py:chain")
    (tmp_path / "syntax.py").write_text("def f(:\n")
    with pytest.raises(SpaceError, match="failed to import"):
        get_space(f"{tmp_path}/syntax.py:f")


def test_shipped_example_space_loads_by_path():
    space = get_space("search_spaces/example_user_space.py:tiny_cnn")
    validate(space.sample(0, 1, 10))
