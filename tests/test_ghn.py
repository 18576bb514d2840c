"""The graph hypernetwork: encoding, decoder shapes, training, NaN recovery, resume, checkpoints."""

from __future__ import annotations

from dataclasses import replace

import networkx as nx
import pytest
import torch
from conftest import fit_config, small_nb201, tiny_graph

from hypernas.compile import Program
from hypernas.errors import CheckpointError, GraphError
from hypernas.ghn import fit as fit_module
from hypernas.ghn.checkpoint import load_hypernet, save_checkpoint
from hypernas.ghn.encode import NUM_FEATURES, encode
from hypernas.ghn.fit import fit_hypernet
from hypernas.ghn.model import GraphHyperNetwork, HyperConfig
from hypernas.graph import validate
from hypernas.ops import RunContext, list_ops
from hypernas.spaces import get_space

TINY = fit_config(steps=6, meta_batch=2, batch_size=16, checkpoint_every=3, hidden=16, rounds=2, rank=4, warmup=2)
NB201_TINY = {"channels": 2, "cells": 1}


def every_parametric_op() -> nx.DiGraph:
    """conv (plain, biased, grouped, dilated, strided), bn on maps and vectors, linear with and without bias."""
    G = nx.DiGraph()
    G.add_node("in", op="input", channels=3)
    G.add_node("c1", op="conv", channels=6, kernel=5, bias=True)
    G.add_node("c2", op="conv", channels=6, kernel=3, groups=3, dilation=2, stride=2)
    G.add_node("b1", op="bn")
    G.add_node("p", op="global_pool")
    G.add_node("l1", op="linear", channels=7, bias=False)
    G.add_node("b2", op="bn")
    G.add_node("l2", op="linear", channels=4)
    G.add_node("out", op="output")
    nx.add_path(G, ["in", "c1", "c2", "b1", "p", "l1", "b2", "l2", "out"])
    return G


def test_encoding_of_varied_graphs():
    graphs = [tiny_graph(), small_nb201(), get_space("macro").sample(0, 2, 3), every_parametric_op()]
    infos = [validate(G) for G in graphs]
    b = encode(infos, list_ops(), ndim=1)
    sizes = [len(i.nodes) for i in infos]
    assert b.op_ids.shape == (sum(sizes),) and b.features.shape == (sum(sizes), NUM_FEATURES)
    assert b.graph_index.bincount().tolist() == sizes
    assert b.edges.shape == (2, sum(G.number_of_edges() for G in graphs))
    # every edge stays inside its graph, and virtual edges span 2+ hops with weight 1/hops
    assert torch.equal(b.graph_index[b.edges[0]], b.graph_index[b.edges[1]])
    assert torch.equal(b.graph_index[b.virtual[0]], b.graph_index[b.virtual[1]])
    assert b.virtual.shape[1] > 0 and float(b.virtual_weight.max()) <= 0.5
    assert len(b.param_nodes) == sum(1 for i in infos for n in i.nodes if n.op.name in ("conv", "bn", "linear"))


def test_distance_buckets_by_hand():
    """tiny_graph is a 7-node chain; every_parametric_op a 9-node chain, so the first is padded."""
    b = encode([validate(tiny_graph()), validate(every_parametric_op())], list_ops(), ndim=1)
    slots, buckets, mask = b.distance_buckets(s_max=2)
    assert mask.sum(1).tolist() == [7, 9] and slots.tolist() == [*range(7), *range(9, 18)]
    first = buckets[0]
    assert first.diagonal()[:7].tolist() == [0] * 7
    assert first[0, 1] == 1 and first[0, 2] == 2  # 1 and 2 hops forward
    assert first[1, 0] == 3 and first[2, 0] == 4  # s_max + hops backward
    assert first[0, 3] == 5 and first[3, 0] == 5  # beyond s_max either way: 2 s_max + 1
    assert (first[7:] == 6).all() and (first[:, 7:] == 6).all()  # padding: 2 s_max + 2
    assert (buckets[1] < 6).all()


def test_transformer_layer_keeps_graphs_apart():
    """A graph's weights do not depend on what it is batched with (the padding is masked)."""
    ghn = GraphHyperNetwork(HyperConfig(hidden=16, rank=4, layer="transformer"), list_ops(), 1)
    alone = ghn(encode([validate(tiny_graph())], list_ops(), 1))[0]
    together = ghn(encode([validate(every_parametric_op()), validate(tiny_graph())], list_ops(), 1))[1]
    assert alone.keys() == together.keys()
    assert all(torch.allclose(alone[k], together[k], atol=1e-5) for k in alone)


@pytest.mark.parametrize("layer", ["mp", "transformer"])
def test_backward_adds_no_repeated_indices_with_atomics(layer):
    """Reproducibility under load: on CPU, the backward of advanced indexing with repeated
    indices (`x[graph_index]`) accumulates with parallel atomic adds, whose float result varied
    between two runs of the same seed on a busy machine. The hypernetwork must not use it."""
    from torch.utils._python_dispatch import TorchDispatchMode

    accumulating = {torch.ops.aten.index_put_.default, torch.ops.aten._index_put_impl_.default,
                    torch.ops.aten.index_put.default}

    racy = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func in accumulating and (args[3] if len(args) > 3 else kwargs.get("accumulate", False)):
                if any(i is not None and i.numel() != i.unique().numel() for i in args[1]):
                    racy.append(str(func))
            return func(*args, **kwargs)

    infos = [validate(G) for G in (small_nb201(), every_parametric_op(), tiny_graph())]
    ghn = GraphHyperNetwork(HyperConfig(hidden=16, rank=4, layer=layer), list_ops(), 1)
    x, y = torch.randn(8, 1, 12), torch.randint(0, 2, (8,))
    with Watch():
        fit_module.hypernet_loss(ghn, infos[:1], x, y, torch.randn(1, 8)).backward()
        sum(w.sum() for d in ghn(encode(infos, list_ops(), 1), torch.randn(3, 8)) for w in d.values()).backward()
    assert racy == []


def test_an_unknown_layer_is_refused():
    from hypernas.errors import HypernasError

    with pytest.raises(HypernasError, match="layer must be one of mp, transformer; got 'lstm'"):
        HyperConfig(layer="lstm")

    with pytest.raises(HypernasError, match="layer must be one of mp, transformer"):
        fit_config(layer="lstm")
    with pytest.raises(HypernasError, match="multiple of the transformer's 4 heads"):
        fit_config(layer="transformer", hidden=30)
    with pytest.raises(HypernasError, match="multiple of the transformer's 4 heads"):
        HyperConfig(hidden=30, layer="transformer")


def test_encoding_refuses_an_op_the_hypernetwork_does_not_know():
    with pytest.raises(GraphError, match="unknown to this hypernetwork"):
        encode([validate(tiny_graph())], ["input", "output", "conv"], ndim=1)


@pytest.mark.parametrize("layer", ["mp", "transformer"])
@pytest.mark.parametrize("ndim", [1, 2])
def test_decoder_shapes_for_every_parametric_op(ndim, layer):
    graphs = [every_parametric_op(), small_nb201(in_channels=3, num_classes=4), get_space("macro").sample(5, 3, 4)]
    infos = [validate(G) for G in graphs]
    ghn = GraphHyperNetwork(HyperConfig(hidden=16, rank=4, layer=layer), list_ops(), ndim)
    weights = ghn(encode(infos, list_ops(), ndim))
    x = torch.randn(4, 3, *([9] * ndim))
    for info, w in zip(infos, weights):
        program = Program(info, ndim)
        assert {k: tuple(v.shape) for k, v in w.items()} == program.param_shapes
        out = program.run(x, w, RunContext(ndim, batch_stats=True))
        assert out.shape == (4, 4) and torch.isfinite(out).all()


def test_predicted_weights_are_fan_in_scaled():
    G = every_parametric_op()
    ghn = GraphHyperNetwork(HyperConfig(), list_ops(), 1)
    w = ghn(encode([validate(G)], list_ops(), 1))[0]
    # std of a He-normal conv weight is sqrt(2 / fan_in); the prediction starts within 3x of it
    for name, fan_in in [("c1.weight", 3 * 5), ("c2.weight", 2 * 3)]:
        ratio = w[name].std().item() / (2 / fan_in) ** 0.5
        assert 0.3 < ratio < 3, (name, ratio)


def test_noise_changes_the_weights():
    ghn = GraphHyperNetwork(HyperConfig(), list_ops(), 1)
    ghn.noise_embed.weight.data.normal_()
    b = encode([validate(tiny_graph())], list_ops(), 1)
    a = ghn(b, torch.zeros(1, 8))[0]["c.weight"]
    z = ghn(b, torch.ones(1, 8))[0]["c.weight"]
    assert not torch.allclose(a, z)


@pytest.mark.parametrize("layer", ["mp", "transformer"])
def test_training_reduces_the_loss(mnist1d, tmp_path, layer):
    config = fit_config(steps=120, meta_batch=2, batch_size=64, hidden=16, rounds=2, rank=4, warmup=5, lr=1e-2,
                       layer=layer)
    before = fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, replace(config, steps=0),
                          out=str(tmp_path / "0.pt"), progress=False)
    state = fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, config, out=str(tmp_path / "120.pt"), progress=False)
    assert before["step"] == 0 and state["step"] == 120 and state["skipped"] == 0
    space = get_space("nb201")
    infos = [validate(space.sample(s, 1, 10, **NB201_TINY)) for s in range(4)]
    x, y = mnist1d.x_train[:256], mnist1d.y_train[:256]

    def loss(path):
        ghn = load_hypernet(path).model
        assert ghn.config.layer == layer
        with torch.no_grad():
            return fit_module.hypernet_loss(ghn, infos, x, y, torch.zeros(4, ghn.config.noise)).item()

    assert loss(str(tmp_path / "120.pt")) < loss(str(tmp_path / "0.pt")) - 0.1


def test_nan_loss_is_skipped_and_recovered(mnist1d, monkeypatch):
    real = fit_module.hypernet_loss
    calls = {"n": 0}

    def sometimes_nan(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] in (2, 4, 5, 6) else loss

    monkeypatch.setattr(fit_module, "hypernet_loss", sometimes_nan)
    state = fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, replace(TINY, steps=8), progress=False)
    assert state["step"] == 8 and state["skipped"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_resume_gives_the_same_result_as_an_uninterrupted_run(mnist1d, tmp_path, monkeypatch):
    whole = fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, TINY, out=str(tmp_path / "a.pt"), progress=False)
    real = fit_module.hypernet_loss
    calls = {"n": 0}

    def crash_at_4(*args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(fit_module, "hypernet_loss", crash_at_4)
    path = str(tmp_path / "b.pt")
    with pytest.raises(KeyboardInterrupt):
        fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, TINY, out=path, progress=False)
    assert torch.load(path, weights_only=True)["step"] == 3
    monkeypatch.setattr(fit_module, "hypernet_loss", real)
    resumed = fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, TINY, out=path, resume=True, progress=False)
    assert resumed["step"] == 6
    for k, v in whole["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def test_resume_refuses_a_different_configuration(mnist1d, tmp_path):
    path = str(tmp_path / "c.pt")
    fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, replace(TINY, steps=3), out=path, progress=False)
    with pytest.raises(CheckpointError, match="space_options"):
        fit_hypernet(get_space("nb201"), {"channels": 4, "cells": 1}, mnist1d, TINY, out=path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="fit"):
        fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, replace(TINY, seed=9), out=path,
                     resume=True, progress=False)


def test_checkpoints_refuse_corrupt_truncated_foreign_and_incompatible_files(mnist1d, tmp_path):
    from hypernas.data import load_dataset

    path = tmp_path / "h.pt"
    fit_hypernet(get_space("nb201"), NB201_TINY, mnist1d, replace(TINY, steps=3), out=str(path),
                 progress=False)
    hypernet = load_hypernet(str(path), data=mnist1d)
    ckpt = hypernet.checkpoint
    assert ckpt["space"] == "nb201" and ckpt["space_options"] == NB201_TINY and ckpt["step"] == 3
    with pytest.raises(CheckpointError, match="trained for"):
        load_hypernet(str(path), data=load_dataset("digits"))
    with pytest.raises(CheckpointError, match="no hypernetwork checkpoint"):
        load_hypernet(str(tmp_path / "missing.pt"))
    blob = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_hypernet(str(tmp_path / "trunc.pt"))
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_hypernet(str(tmp_path / "junk.pt"))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a hypernas"):
        load_hypernet(str(tmp_path / "foreign.pt"))
    for hyper in ({"rank": 99}, {"layer": "lstm"}):
        torch.save(dict(ckpt, hyper={**ckpt["hyper"], **hyper}), tmp_path / "mismatch.pt")
        with pytest.raises(CheckpointError, match="does not match"):
            load_hypernet(str(tmp_path / "mismatch.pt"))


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "h.pt"
    save_checkpoint({"format": "x", "v": 1}, str(path))

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*h.pt': disk full"):
        save_checkpoint({"format": "x", "v": 2}, str(path))
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["v"] == 1  # the old checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["h.pt"]  # no temporary file left behind


def test_virtual_edges_are_the_pairs_two_to_s_max_hops_apart():
    import networkx as nx
    from scipy.sparse import csr_matrix

    from hypernas.ghn.encode import _virtual_edges
    from hypernas.graph import as_info
    from hypernas.spaces import get_space

    for G in get_space("macro").sample_distinct(5, 0, 1, 10):
        info = as_info(G)
        local = {n.name: i for i, n in enumerate(info.nodes)}
        D = nx.DiGraph([(local[p], local[n.name]) for n in info.nodes for p in n.inputs])
        adj = nx.to_scipy_sparse_array(D, nodelist=range(len(info.nodes)), format="csr")
        for s_max in (2, 4, 10):
            expected = sorted((u, v, float(k)) for u, lengths in nx.all_pairs_shortest_path_length(D, cutoff=s_max)
                              for v, k in lengths.items() if k >= 2)
            u, v, k = _virtual_edges(csr_matrix(adj), s_max)
            assert list(zip(u.tolist(), v.tolist(), k.tolist())) == expected
