"""Compiled modules: 1-D and 2-D shapes, own weights versus an external dict, degenerate graphs."""

from __future__ import annotations

import pytest
import torch
from conftest import DEAD_CELL, small_nb201, tiny_graph

from hypernas.compile import compile_graph
from hypernas.errors import DatasetError
from hypernas.spaces import get_space


@pytest.mark.parametrize("ndim, shape", [(1, (5, 1, 40)), (2, (5, 1, 12, 12)), (2, (5, 1, 7, 9)), (1, (5, 1, 13))])
def test_forward_shapes_1d_and_2d(ndim, shape):
    model = compile_graph(small_nb201(), ndim)
    assert model(torch.randn(shape)).shape == (5, 10)


def test_macro_architectures_compile_for_both_dims():
    space = get_space("macro")
    for seed in range(5):
        G = space.sample(seed, 3, 7)
        assert compile_graph(G, 1)(torch.randn(2, 3, 33)).shape == (2, 7)
        assert compile_graph(G, 2)(torch.randn(2, 3, 15, 15)).shape == (2, 7)


def test_wrong_input_rank_is_a_clear_error():
    with pytest.raises(DatasetError, match=r"\(N, C, L\)"):
        compile_graph(tiny_graph(), 1)(torch.randn(2, 2, 5, 5))


def test_functional_call_uses_the_external_weights():
    torch.manual_seed(0)
    model = compile_graph(tiny_graph(), 1).eval()
    x = torch.randn(4, 2, 9)
    own = model(x)
    params = {k: torch.randn_like(v) for k, v in model.named_parameters()}
    external = torch.func.functional_call(model, params, (x,))
    assert not torch.allclose(own, external)
    # Loading the same tensors as the module's own weights gives the same output.
    with torch.no_grad():
        for k, v in model.named_parameters():
            v.copy_(params[k])
    model.batch_stats = True  # external dicts carry no running statistics
    assert torch.allclose(model(x), torch.func.functional_call(model, params, (x,)), atol=1e-6)


def test_parameter_names_are_node_names():
    names = {k for k, _ in compile_graph(tiny_graph(), 1).named_parameters()}
    assert names == {"nodes.c.weight", "nodes.b.weight", "nodes.b.bias", "nodes.l.weight", "nodes.l.bias"}


def test_degenerate_graph_compiles_and_predicts_a_constant():
    model = compile_graph(small_nb201(DEAD_CELL), 1).eval()
    assert model.degenerate
    out = model(torch.randn(6, 1, 40))
    assert torch.allclose(out, out[:1].expand_as(out))


def test_training_mode_updates_running_stats_and_eval_uses_them():
    model = compile_graph(tiny_graph(), 1)
    x = torch.randn(8, 2, 6) * 3 + 1
    model.train()
    model(x)
    assert not torch.equal(model.nodes["b"].running_mean, torch.zeros(4))
    model.eval()
    a = model(x)
    model.batch_stats = True
    assert not torch.allclose(a, model(x))
