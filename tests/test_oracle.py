"""`python -m benchmarks.oracle`: the search loop with a table lookup in place of the hypernetwork."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import fit_config

from benchmarks import oracle
from benchmarks.cifar10_table import load_cifar10_table
from hypernas.samplers import make_sampler
from hypernas.spaces import get_space


@pytest.fixture(scope="module")
def table():
    return load_cifar10_table()


def test_every_method_runs_through_the_search_loop(tmp_path):
    md, png = tmp_path / "o.md", tmp_path / "o.png"
    out = oracle.main(["--seeds", "2", "--queries", "12", "--warm-pool", "15", "--out-md", str(md), "--out-png", str(png)])
    assert set(out["by_query"]) == {"random", "tpe", "nsga2", "evolution", "tuned"}
    for per in (out["by_query"], out["by_trial"]):
        for method, row in per.items():
            mean, std, runs = row[12]
            assert mean >= 0 and std >= 0 and runs == 2
    text = md.read_text()
    assert "| tuned |" in text and "regret at 12 (best found)" in text
    tuned = out["by_query"]["tuned"][12][0]
    assert f"({out['best'] - tuned:.2f})" in text.split("| tuned |")[1].split("\n")[0]
    assert png.stat().st_size > 1000


def test_queries_are_distinct_lookups_and_the_curve_is_the_running_best(table):
    study = oracle.run_method(replace(oracle.METHODS["random"], trials=30), seed=3, table=table)
    fresh = [t for t in study.trials if "duplicate_of" not in t.user_attrs]
    assert len(fresh) == 30 and len({t.user_attrs["hash"] for t in fresh}) == 30
    assert all(t.values[0] == table[t.user_attrs["arch"]] for t in fresh)  # the score is the cell's own entry
    curve = oracle.best_so_far(study, "query")
    assert len(curve) == 30 and curve == sorted(curve) and curve[-1] == max(t.values[0] for t in fresh)
    assert len(oracle.best_so_far(study, "trial")) == len(study.trials)


def test_same_seed_same_search(table):
    a = oracle.best_so_far(oracle.run_method(replace(oracle.METHODS["tpe"], trials=15), 1, table))
    b = oracle.best_so_far(oracle.run_method(replace(oracle.METHODS["tpe"], trials=15), 1, table))
    assert a == b


def test_warm_start_enqueues_the_synflow_design_first(table):
    cfg = replace(oracle.CANDIDATES["tpe_warm10"], trials=5, warm_start=3, warm_pool=8)
    study = oracle.run_method(cfg, 0, table)
    design = oracle.synflow_design(oracle.get_space("nb201"), {}, 3, 10, (32, 32), 3, 8, 0, progress=False)
    assert [t.params for t in study.trials[:3]] == design
    networks = oracle.Networks(1, 10, (40,), {"channels": 2, "cells": 1})
    on_mnist1d = oracle.run_method(cfg, 0, table, networks=networks)
    design = oracle.synflow_design(oracle.get_space("nb201"), networks.space_options, 1, 10, (40,), 3, 8, 0,
                                   progress=False)
    assert [t.params for t in on_mnist1d.trials[:3]] == design


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # GP's deterministic_objective
def test_every_candidate_builds_its_sampler():
    """A misspelt option in a candidate fails here, not minutes into a development run."""
    space = oracle.get_space("nb201")
    for name, cfg in {**oracle.METHODS, **oracle.CANDIDATES}.items():
        assert make_sampler(cfg.sampler, 0, space, cfg.sampler_options) is not None, name


def test_planted_regret_summary():
    curves = {"perfect": [[90.0, 94.0, 94.0]], "poor": [[80.0, 85.0, 90.0]]}
    summary = oracle.summarize(curves, best=94.0, checkpoints=(1, 3))
    assert summary["perfect"][3][0] == 0.0 and summary["poor"][1][0] == 14.0


def test_its_command_runs_it_and_rejects_an_unknown_method(capsys):
    oracle.main(["--seeds", "1", "--queries", "5", "--methods", "random"])
    assert "| random |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        oracle.main(["--methods", "nosuch"])
    assert "nosuch" in capsys.readouterr().err


def test_development_table_scores_equivalent_cells_alike_and_is_cached(mnist1d, tmp_path, monkeypatch):
    from hypernas.ghn.fit import fit_hypernet
    from search_spaces import nb201

    path = str(tmp_path / "h.pt")
    fit_hypernet(get_space("nb201"), {"channels": 2, "cells": 1}, mnist1d,
                 fit_config(steps=2, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1), out=path,
                 progress=False)
    cells = list(nb201.all_cells())[:40]  # the first 40 cells: edge (2, 3) and then (1, 3) vary
    monkeypatch.setattr(oracle.nb201, "all_cells", lambda: iter(cells))
    dev = oracle.hypernet_table(path, progress=False)
    assert oracle.hypernet_networks(path) == oracle.Networks(1, 10, (40,), {"channels": 2, "cells": 1})
    assert set(dev) == {nb201.to_string(c) for c in cells}
    assert all(0 < v <= 100 for v in dev.values())
    # every cell whose output is cut off (edges into node 3 all "none") computes the same constant network
    cut = [nb201.to_string(c) for c in cells if c[3] == c[4] == c[5] == "none"]
    assert len(cut) >= 1 and len({dev[a] for a in cut}) == 1
    cached = list(tmp_path.glob("dev_table_*.json"))
    assert len(cached) == 1
    elsewhere = tmp_path / "new" / "cache"  # a cache folder that does not exist yet is made
    assert oracle.hypernet_table(path, cache_dir=str(elsewhere), progress=False) == dev
    assert len(list(elsewhere.glob("dev_table_*.json"))) == 1
    monkeypatch.setattr(oracle, "Scorer", None)  # a second call must not score anything
    assert oracle.hypernet_table(path, progress=False) == dev


def test_development_objective_refuses_a_missing_checkpoint_or_another_space(mnist1d, tmp_path, capsys):
    from hypernas.ghn.fit import fit_hypernet

    with pytest.raises(SystemExit, match="1"):
        oracle.main(["--dev-hypernet", str(tmp_path / "missing.pt"), "--methods", "tpe"])
    assert "missing.pt" in capsys.readouterr().err
    path = str(tmp_path / "macro.pt")
    fit_hypernet(get_space("macro"), {}, mnist1d, fit_config(steps=0, hidden=8, rounds=1, rank=2, eval_archs=1), out=path,
                 progress=False)
    with pytest.raises(SystemExit, match="1"):
        oracle.main(["--dev-hypernet", path, "--methods", "tpe"])
    assert "space 'macro'" in capsys.readouterr().err


def test_development_objective_replaces_the_table(monkeypatch, table):
    synthetic = {arch: float(sum(map(ord, arch)) % 97) for arch in table}  # unrelated to CIFAR-10
    seen, shapes = [], []
    monkeypatch.setattr(oracle, "hypernet_table", lambda path: seen.append(path) or synthetic)
    mnist1d_networks = oracle.Networks(1, 10, (40,), {"channels": 2, "cells": 1})
    monkeypatch.setattr(oracle, "hypernet_networks", lambda path: mnist1d_networks)
    design = oracle.synflow_design

    def recorded(space, options, in_channels, num_classes, input_size, *args, **kwargs):
        shapes.append((options, in_channels, num_classes, input_size))
        return design(space, options, in_channels, num_classes, input_size, *args, **kwargs)

    monkeypatch.setattr(oracle, "synflow_design", recorded)
    out = oracle.main(["--dev-hypernet", "some.pt", "--seeds", "2", "--seed-offset", "1000", "--queries", "6",
                       "--methods", "tpe,tpe_mv_warm10", "--warm-pool", "12"])
    assert seen == ["some.pt"] and out["best"] == max(synthetic.values())
    assert set(out["by_query"]) == {"tpe", "tpe_mv_warm10"}
    # the warm start's synflow ran on the development objective's networks, as a user's search would
    assert shapes == [({"channels": 2, "cells": 1}, 1, 10, (40,))] * 2
