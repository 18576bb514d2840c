"""Zero-cost proxies: each against a value worked out by hand on a tiny network, seeds, dead graphs."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from conftest import DEAD_CELL, small_nb201

from hypernas import proxies
from hypernas.compile import compile_graph
from hypernas.data import Dataset
from hypernas.graph import validate


def chain(in_channels: int, *nodes: tuple[str, dict]) -> nx.DiGraph:
    """input -> nodes... -> output, each node given as (name, attributes)."""
    G = nx.DiGraph()
    G.add_node("in", op="input", channels=in_channels)
    for name, attrs in nodes:
        G.add_node(name, **attrs)
    G.add_node("out", op="output")
    nx.add_path(G, ["in", *(n for n, _ in nodes), "out"])
    return G


def with_weights(G: nx.DiGraph, ndim: int = 1, **weights: list) -> torch.nn.Module:
    model = compile_graph(G, ndim)
    model.load_flat({k.replace("__", "."): torch.tensor(v, dtype=torch.float32) for k, v in weights.items()})
    return model


def test_synflow_by_hand():
    # in(1) -> conv(2, k=1) w=[-2, 0.5] -> bn -> relu -> pool -> linear(1) w=[3, -1], bias 5.
    # |weights|, all-ones input, BN the identity: pooled features |a| = [2, 0.5], R = 2*3 + 0.5*1 + 5.
    # conv: a_i dR/da_i = |a_i||b_i| = 6, 0.5; linear: b_i dR/db_i = same; bias not counted.
    # synflow = 2 * (6 + 0.5) = 13. (BN with variance 1 would give 13/sqrt(1+1e-5); batch
    # statistics 0; counting the bias 18.)
    G = chain(1, ("c", {"op": "conv", "channels": 2, "kernel": 1}), ("b", {"op": "bn"}), ("r", {"op": "relu"}),
              ("p", {"op": "global_pool"}), ("l", {"op": "linear", "channels": 1}))
    model = with_weights(G, c__weight=[[[-2.0]], [[0.5]]], l__weight=[[3.0, -1.0]], l__bias=[5.0])
    x = torch.randn(4, 1, 3)  # only its shape (1, 3) matters
    assert proxies.synflow(model, x, seed=None) == pytest.approx(13.0, rel=1e-12)


def test_jacob_cov_by_hand():
    # in(1) -> relu -> pool -> linear(1): d(logit)/dx_j = (w/4) * [x_j > 0], so each sample's
    # Jacobian is its sign mask scaled. Masks 1100, 1010, 1110: centred, the first two are
    # orthogonal with norm 1, the third has norm^2 3/4 and dot 1/2 with each, so
    # corr = [[1, 0, r], [0, 1, r], [r, r, 1]], r = 1/sqrt(3); eigenvalues 1 (on (1, -1, 0))
    # and 1 +- sqrt(2) r = 1 +- sqrt(2/3). Score -sum(log(l + k) + 1/(l + k)) = -5.90114772...
    G = chain(1, ("r", {"op": "relu"}), ("p", {"op": "global_pool"}), ("l", {"op": "linear", "channels": 1}))
    model = with_weights(G, l__weight=[[-2.0]], l__bias=[0.0])
    x = torch.tensor([[1, 1, -1, -1], [1, -1, 1, -1], [1, 1, 1, -1]], dtype=torch.float32)[:, None, :]
    lams = [1.0, 1 + math.sqrt(2 / 3), 1 - math.sqrt(2 / 3)]
    want = -sum(math.log(lam + 1e-5) + 1 / (lam + 1e-5) for lam in lams)
    assert want == pytest.approx(-5.901147726, abs=1e-8)
    assert proxies.jacob_cov(model, x, seed=None) == pytest.approx(want, abs=1e-9)


def test_naswot_by_hand_skips_activations_that_cannot_reach_the_output():
    # Main path in -> relu -> sum -> pool -> linear; a second relu feeds only a zero op.
    # Codes of the main relu for x = (1, 1), (1, -1), (-1, -1): 11, 10, 00. K_ij counts the
    # positions where codes agree: [[2, 1, 0], [1, 2, 1], [0, 1, 2]], det = 2*3 - 1*2 = 4,
    # score log 4. Counting the dead relu too would double K: log 32.
    G = nx.DiGraph()
    G.add_node("in", op="input", channels=1)
    G.add_node("r", op="relu")
    G.add_node("dead_r", op="relu")
    G.add_node("z", op="zero")
    G.add_node("s", op="sum")
    G.add_node("p", op="global_pool")
    G.add_node("l", op="linear", channels=2)
    G.add_node("out", op="output")
    nx.add_path(G, ["in", "r", "s", "p", "l", "out"])
    nx.add_path(G, ["in", "dead_r", "z", "s"])
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])[:, None, :]
    assert proxies.naswot(G, x, seed=0) == pytest.approx(math.log(4), abs=1e-9)


def _snip_net() -> torch.nn.Module:
    # in(1) -> conv(1, k=1) a=1 -> pool -> linear(2) b=[0.5, -0.5], bias [1, 1] (no effect on softmax).
    G = chain(1, ("c", {"op": "conv", "channels": 1, "kernel": 1}), ("p", {"op": "global_pool"}),
              ("l", {"op": "linear", "channels": 2}))
    return with_weights(G, c__weight=[[[1.0]]], l__weight=[[0.5], [-0.5]], l__bias=[1.0, 1.0])


# Two identical samples x = 1, label 0 (a sum instead of the mean would double the scores).
SNIP_X, SNIP_Y = torch.ones(2, 1, 1), torch.zeros(2, dtype=torch.int64)
SIG = 1 / (1 + math.e)  # sigma(-1): logits [0.5, -0.5] + 1 give p = [sigma(1), sigma(-1)]


def test_snip_by_hand():
    # dL/dz = p - onehot = [-s, s], s = sigma(-1). dL/db = [-s, s] * (a x) = [-s, s];
    # dL/da = sum_i (p_i - y_i) b_i x = -0.5 s - 0.5 s = -s.
    # snip = |a dL/da| + |b0 dL/db0| + |b1 dL/db1| = s + 0.5 s + 0.5 s = 2 s = 0.53788...
    # (counting the bias would add 2 s more).
    assert proxies.snip(_snip_net(), SNIP_X, SNIP_Y, seed=None) == pytest.approx(2 * SIG, rel=1e-6)


def test_grad_norm_by_hand():
    # Same network: ||dL/da|| + ||dL/db|| = s + sqrt(2) s = 0.64928... (the bias would add sqrt(2) s).
    assert proxies.grad_norm(_snip_net(), SNIP_X, SNIP_Y, seed=None) == pytest.approx((1 + math.sqrt(2)) * SIG, rel=1e-6)


def _toy_data(n_train: int = 10, n_val: int = 30, n_test: int = 20) -> Dataset:
    """All inputs zero: a network can only learn the labels' frequencies through its biases."""
    return Dataset("toy", torch.zeros(n_train, 1, 8), torch.full((n_train,), 3), torch.zeros(n_val, 1, 8),
                   torch.full((n_val,), 5), torch.zeros(n_test, 1, 8), torch.tensor([3, 5] * (n_test // 2)),
                   num_classes=10, val_fraction=0.75, split_seed=0)


def test_one_epoch_trains_without_the_validation_slice_and_scores_on_it():
    # in -> pool -> linear on zeros: the logits are the bias. Train labels are all 3, the
    # validation slice's all 5, the test split half 3 half 5. One SGD step on the 10 train
    # samples raises bias 3 most, so every prediction is 3: validation accuracy exactly 0.
    # Training with the slice included (30 fives) would give 1.0; scoring the test split 0.5.
    G = chain(1, ("p", {"op": "global_pool"}), ("l", {"op": "linear", "channels": 10}))
    data = _toy_data()
    assert proxies.one_epoch(G, data, seed=0) == 0.0
    # The default protocol still trains on train + validation and reports the test split.
    from hypernas.train import TrainConfig, train

    r = train(G, data, TrainConfig(epochs=1), progress=False)
    assert (r.test_accuracy, r.split) == (0.5, "test")


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 40, generator=gen), torch.randint(0, 10, (16,), generator=gen)


@pytest.mark.parametrize("name", sorted(proxies.PROXIES))
def test_proxies_are_reproducible_under_a_seed(name, batch):
    x, y = batch
    fn = proxies.PROXIES[name]
    G = small_nb201()
    state = torch.random.get_rng_state()
    a, b, c = fn(G, x, y, 0), fn(G, x, y, 0), fn(G, x, y, 1)
    assert a == b and math.isfinite(a)
    assert a != c  # the seed draws the weights
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone


def test_degenerate_graph_gets_the_natural_value_or_the_floor(batch):
    x, y = batch
    G = small_nb201(DEAD_CELL)
    assert validate(G).degenerate
    scores = {name: fn(G, x, y, 0) for name, fn in proxies.PROXIES.items()}
    assert scores == {"synflow": 0.0, "snip": 0.0, "grad_norm": 0.0, "naswot": 0.0,
                      "jacob_cov": proxies.jacob_cov_floor(len(x))}
    alive = {name: fn(small_nb201(), x, y, 0) for name, fn in proxies.PROXIES.items()}
    assert all(alive[name] > scores[name] for name in scores)  # the floor really is below
    data = _toy_data()
    assert 0.0 <= proxies.one_epoch(small_nb201(DEAD_CELL), data) <= 1.0
