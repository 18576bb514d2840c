"""The Weisfeiler-Lehman GP sampler: seeded, never repeats a network, follows the model, clear errors."""

from __future__ import annotations

import optuna
import pytest

from hypernas.errors import HypernasError
from hypernas.graph import canonical_hash, simplify
from hypernas.samplers import make_sampler
from hypernas.samplers.wlgp import WLGPSampler
from hypernas.spaces import Networks, get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = get_space("nb201")
TINY = {"channels": 4, "cells": 1}


graph_of = Networks(SPACE, SPACE.resolve_options(TINY), 1, 3)


def convs(trial) -> float:
    """The number of 3x3 convolutions the network really uses (dead edges aside): a function of its graph."""
    S = simplify(SPACE.build_info(trial, 1, 3, **TINY)[1])
    return float(sum(S.nodes[n]["op"] == "conv" and "kernel=3" in S.nodes[n]["label"] for n in S))


BEST = convs(optuna.trial.FixedTrial(dict.fromkeys(SPACE.grid, "nor_conv_3x3")))


def keyless(params):
    """`graph_of` as a plain function: it has no `Networks` key, so its sampler caches alone."""
    return graph_of(params)


def run(seed: int, n: int = 20, networks=graph_of) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=WLGPSampler(networks, n_startup_trials=5, seed=seed))
    study.optimize(convs, n_trials=n)
    return study


SUB = ("none", "skip_connect", "nor_conv_3x3")  # 3^6 = 729 cells, so that listing the space is quick


def sub_convs(trial) -> float:
    """`convs` over the cells that use three of the five ops."""
    return convs(optuna.trial.FixedTrial({name: trial.suggest_categorical(name, SUB) for name in SPACE.grid}))


def run_all(seed: int, n: int = 20, networks=graph_of) -> optuna.Study:
    sampler = WLGPSampler(networks, n_startup_trials=5, pool="all", seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(sub_convs, n_trials=n)
    return study


def test_same_seed_same_sequence_and_no_network_twice():
    a, b = run(0), run(0)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    hashes = [canonical_hash(graph_of(t.params)) for t in a.trials[5:]]
    assert len(set(hashes)) == len(hashes)
    earlier = {canonical_hash(graph_of(t.params)) for t in a.trials[:5]}
    assert not earlier & set(hashes)


def test_the_bag_cache_changes_nothing(monkeypatch):
    """Bags are cached per process and `Networks` key, and the cache starts afresh when full:
    the sequence is the same either way."""
    import hypernas.samplers.wlgp as wlgp

    alone = [t.params for t in run(1, n=12, networks=keyless).trials]
    monkeypatch.setattr(wlgp, "_SHARED", {})
    assert [t.params for t in run(1, n=12).trials] == alone
    assert graph_of.key in wlgp._SHARED
    assert [t.params for t in run(1, n=12).trials] == alone  # every bag from the shared cache
    monkeypatch.setattr(wlgp, "CACHE_LIMIT", 5)
    monkeypatch.setattr(wlgp, "_SHARED", {})
    assert [t.params for t in run(1, n=12).trials] == alone
    assert len(wlgp._SHARED[graph_of.key]) <= 5


def test_the_model_finds_what_the_graph_explains():
    """The score counts a graph feature, so the kernel can learn it: 15 model-chosen trials
    after 5 random ones reach the best network in every seed; 20 random trials mostly do not."""
    assert [max(t.value for t in run(seed).trials) for seed in range(3)] == [BEST] * 3
    random = [optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed)) for seed in range(3)]
    for study in random:
        study.optimize(convs, n_trials=20)
    assert sum(max(t.value for t in study.trials) == BEST for study in random) <= 1


def test_pool_all_lists_the_space_and_follows_the_model(monkeypatch):
    """EI over every unseen cell: seeded, never a network twice (nor one equivalent to a trial
    before), and the best network in every seed; listing per process changes nothing."""
    import hypernas.samplers.wlgp as wlgp

    a = run_all(0, networks=keyless)
    assert [t.params for t in a.trials] == [t.params for t in run_all(0, networks=keyless).trials]
    hashes = [canonical_hash(graph_of(t.params)) for t in a.trials[5:]]
    assert len(set(hashes)) == len(hashes) and not set(hashes) & {canonical_hash(graph_of(t.params)) for t in a.trials[:5]}
    assert [max(t.value for t in run_all(seed).trials) for seed in range(3)] == [BEST] * 3
    monkeypatch.setattr(wlgp, "_SPACES", {})
    assert [t.params for t in run_all(0).trials] == [t.params for t in a.trials]
    (listing,) = wlgp._SPACES[graph_of.key].values()
    assert len(listing.row) == 3 ** 6 and len(listing.params) < 3 ** 6  # equivalent cells share a row
    assert [t.params for t in run_all(0).trials] == [t.params for t in a.trials]  # from the shared listing


def test_local_search_hands_a_local_optimum_to_the_listed_space():
    """The tuned configuration's shape: local search climbs to the best network, finds all its
    neighbors seen, and the graph GP over the listed space proposes new networks from there."""
    from hypernas.samplers.local import _MOVE, LocalSearchSampler

    sampler = LocalSearchSampler(n_startup_trials=5, startup=WLGPSampler(graph_of, 5, pool="all", seed=0), seed=0,
                                 at_local_optimum="startup")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(sub_convs, n_trials=40)
    assert max(t.value for t in study.trials) == BEST
    proposed = [t.number for t in study.trials[5:] if _MOVE not in t.system_attrs]
    assert len(proposed) >= 10  # the climb ended and the graph GP took over
    hashes = [canonical_hash(graph_of(t.params)) for t in study.trials]
    for n in proposed:  # a move may land on a cell equivalent to an earlier one; the GP never does
        assert hashes[n] not in hashes[:n]


def test_bad_input():
    with pytest.raises(HypernasError, match="n_startup_trials must be an integer >= 2"):
        WLGPSampler(graph_of, n_startup_trials=1)
    with pytest.raises(HypernasError, match="pool is one of near, all, got 'every'"):
        WLGPSampler(graph_of, pool="every")
    study = optuna.create_study(sampler=WLGPSampler(graph_of, 2, pool="all"))
    with pytest.raises(HypernasError, match='at most 50,000 parameter combinations; this one has 1,000,000: use pool="near"'):
        study.optimize(lambda t: sum(t.suggest_categorical(f"x{i}", list(range(10))) for i in range(6)), n_trials=3)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "FAIL"]  # the start-up trials are kept
    study = optuna.create_study(sampler=make_sampler("wlgp", 0, SPACE, {"n_startup_trials": 2}))  # no graph_of
    with pytest.raises(HypernasError, match="needs graph_of"):
        study.optimize(convs, n_trials=3)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=WLGPSampler(graph_of, 2))
    with pytest.raises(HypernasError, match="single-objective studies only"):
        study.optimize(lambda t: (convs(t), 0.0), n_trials=3)
    study = optuna.create_study(sampler=WLGPSampler(graph_of, 2))
    with pytest.raises(HypernasError, match="all categorical"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)


def test_the_search_loop_gives_the_sampler_its_networks():
    """Through `hypernas search`'s loop (here with the CIFAR-10 table as the scorer), on its own
    and as local search's model at a local optimum: every query a new network."""
    from dataclasses import replace

    from benchmarks import oracle
    from benchmarks.cifar10_table import load_cifar10_table

    table = load_cifar10_table()
    for method in ("wlgp", "local_escape_wlgp"):
        study = oracle.run_method(replace(oracle.CANDIDATES[method], trials=14), 0, table)
        fresh = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
        assert len(fresh) == 14 and len({t.user_attrs["hash"] for t in fresh}) == 14
