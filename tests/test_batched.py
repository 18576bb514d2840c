"""Programs run together give what each gives alone: every built-in space, sequences and images,
ops without a batched form, contexts that forbid it, and the scorer end to end."""

from __future__ import annotations

import random

import networkx as nx
import pytest
import torch

from hypernas.batched import run_programs, run_together
from hypernas.compile import Program
from hypernas.errors import OptionError
from hypernas.graph import validate
from hypernas.ops import RunContext
from hypernas.spaces import RandomTrial, get_space


def _programs(space: str, options: dict, n: int, in_channels: int, ndim: int, seed: int = 0):
    rng = random.Random(seed)
    infos = [get_space(space).build_info(RandomTrial(rng), in_channels, 10, **options)[1] for _ in range(n)]
    programs = [Program(info, ndim) for info in infos]
    g = torch.Generator().manual_seed(seed)
    weights = [{k: 0.3 * torch.randn(shape, generator=g) for k, shape in p.param_shapes.items()} for p in programs]
    return programs, weights


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    assert len(a) == len(b)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("space, options, ndim, x_shape", [
    ("nb201", {"channels": 8, "cells": 1}, 1, (16, 1, 40)),
    ("nb201", {"channels": 4, "cells": 2}, 2, (8, 3, 8, 8)),
    ("macro", {}, 1, (16, 1, 40)),  # widths, kernels, depthwise convolutions and depths all vary
])
def test_together_equals_one_by_one(space, options, ndim, x_shape):
    programs, weights = _programs(space, options, 12, x_shape[1], ndim)
    x = torch.randn(x_shape, generator=torch.Generator().manual_seed(1))
    for ctx in (RunContext(ndim, batch_stats=True), RunContext(ndim, training=True, batch_stats=True)):
        _same(run_together(programs, x, weights, ctx), [p.run(x, w, ctx) for p, w in zip(programs, weights)])


def test_gradients_flow_to_each_networks_weights_as_alone():
    programs, weights = _programs("nb201", {"channels": 4, "cells": 1}, 4, 1, 1)
    x = torch.randn(8, 1, 20)
    ctx = RunContext(1, training=True, batch_stats=True)
    grads = []
    for run in (lambda: run_together(programs, x, weights, ctx), lambda: [p.run(x, w, ctx) for p, w in zip(programs, weights)]):
        for w in weights:
            for t in w.values():
                t.requires_grad_(True)
                t.grad = None
        torch.stack([out.square().mean() for out in run()]).sum().backward()
        grads.append([t.grad.clone() if t.grad is not None else torch.zeros_like(t) for w in weights for t in w.values()])
    _same(*grads)


def test_a_user_op_without_a_batched_form_runs_one_by_one():
    from hypernas.ops import OPS, Op, register_op

    class Square(Op):
        name = "test_square_batched"

        def forward(self, a, xs, p, ctx):
            return xs[0] * xs[0]

    register_op(Square)
    try:
        def net(channels: int) -> nx.DiGraph:
            G = nx.DiGraph()
            G.add_node("in", op="input", channels=1)
            G.add_node("c", op="conv", channels=channels, kernel=3)
            G.add_node("sq", op="test_square_batched")
            G.add_node("gp", op="global_pool")
            G.add_node("fc", op="linear", channels=3)
            G.add_node("out", op="output")
            nx.add_path(G, ["in", "c", "sq", "gp", "fc", "out"])
            return G

        programs = [Program(validate(net(c)), 1) for c in (2, 2, 3)]
        weights = [{k: torch.randn(s) for k, s in p.param_shapes.items()} for p in programs]
        x = torch.randn(4, 1, 10)
        ctx = RunContext(1, batch_stats=True)
        _same(run_together(programs, x, weights, ctx), [p.run(x, w, ctx) for p, w in zip(programs, weights)])
    finally:
        OPS.pop("test_square_batched")


def test_contexts_that_need_each_network_alone_run_one_by_one():
    programs, weights = _programs("nb201", {"channels": 4, "cells": 1}, 3, 1, 1)
    x, seen, alone = torch.randn(4, 1, 12), [], []
    run_together(programs, x, weights, RunContext(1, batch_stats=True, observe=lambda n, out: seen.append(out.shape)))
    for p, w in zip(programs, weights):
        p.run(x, w, RunContext(1, batch_stats=True, observe=lambda n, out: alone.append(out.shape)))
    assert seen and seen == alone  # each network's own activations, never a concatenation
    with pytest.raises(OptionError, match="execution must be one of auto, each, together"):
        run_programs(programs, torch.randn(4, 1, 12), weights, RunContext(1), "fast")


def test_the_scorer_gives_the_same_scores_either_way(tmp_path, mnist1d):
    from conftest import fit_config

    from hypernas.ghn.fit import fit_hypernet
    from hypernas.score import Scorer

    path, data = str(tmp_path / "h.pt"), mnist1d
    fit_hypernet(get_space("nb201"), {"channels": 4, "cells": 1}, data,
                 fit_config(steps=3, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, eval_archs=2, warmup=1),
                 out=path, progress=False)
    graphs = get_space("nb201").sample_distinct(10, 3, data.in_channels, data.num_classes, channels=4, cells=1)
    each = Scorer.from_checkpoint(path, data, samples=2, execution="each").score(graphs)
    together = Scorer.from_checkpoint(path, data, samples=2, execution="together").score(graphs)
    for a, b in zip(each, together):
        assert a.hash == b.hash and abs(a.score - b.score) < 1e-5 and abs(a.loss - b.loss) < 1e-4
    with pytest.raises(OptionError, match="execution must be one of"):
        Scorer.from_checkpoint(path, data, execution="fast")


def test_together_runs_in_chunks_that_fit_memory(monkeypatch):
    import hypernas.batched as batched

    programs, weights = _programs("nb201", {"channels": 4, "cells": 1}, 6, 1, 1)
    x = torch.randn(8, 1, 16)
    ctx = RunContext(1, batch_stats=True)
    alone = [p.run(x, w, ctx) for p, w in zip(programs, weights)]
    assert batched._chunks(programs, x) == [list(range(6))]
    monkeypatch.setattr(batched, "TOGETHER_BYTES", 1)  # each network alone in its chunk, still in order
    assert batched._chunks(programs, x) == [[j] for j in range(6)]
    _same(run_programs(programs, x, weights, ctx, "together"), alone)
