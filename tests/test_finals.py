"""The final stage: rounds that refit a model of trained accuracy, and a start from predicted weights."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import optuna
import pytest
import torch
from conftest import GOOD_CELL, fails_cleanly, fit_config

from hypernas import recalibrate
from hypernas.config import SearchConfig
from hypernas.errors import HypernasError
from hypernas.ghn.checkpoint import load_hypernet
from hypernas.ghn.start import predicted_start
from hypernas.search import run_search
from hypernas.study import load_study

OPTIONS = {"channels": 2, "cells": 1}
FIT = fit_config(steps=3, meta_batch=2, batch_size=16, hidden=8, rounds=1, rank=2, warmup=1, eval_archs=2)


def config(tmp_path, **kw) -> SearchConfig:
    base = dict(space="nb201", space_options=OPTIONS, study="f", runs=str(tmp_path), trials=24, trial_batch=8,
                fit=FIT, top_k=4, final_epochs=1, samples=2, final_rounds=2)
    return SearchConfig(**{**base, **kw})


def finalists(cfg) -> dict[int, dict]:
    done = load_study(cfg.storage_url, cfg.study).get_trials(states=[optuna.trial.TrialState.COMPLETE])
    return {t.number: t.user_attrs for t in done if "trained_accuracy" in t.user_attrs}


def test_the_model_refits_on_labels_and_the_next_round_takes_what_is_untrained():
    rng = np.random.default_rng(0)
    rows = [{"score": float(s), "params": int(p), "flops": int(p) * 10} for s, p in zip(rng.random(40), rng.integers(1, 99, 40))]
    X = recalibrate.rank_features(rows)
    assert X.shape == (40, 3) and X.min() == 0 and X.max() == 1
    labelled = [0, 1, 2, 3]
    y_size = [X[i, 1] for i in labelled]  # labels that follow size, not score
    mean, std = recalibrate.predict(recalibrate.fit(X[labelled], y_size), X)
    assert np.corrcoef(mean, X[:, 1])[0, 1] > 0.9 and (std > 0).all()  # refitted: it now ranks by size
    picks = recalibrate.next_round(mean, set(labelled), 3)
    untrained = [i for i in range(40) if i not in labelled]
    assert picks == sorted(untrained, key=lambda i: -mean[i])[:3]  # the best predicted, none trained before
    assert recalibrate.round_sizes(5, 2) == [3, 2] and recalibrate.round_sizes(4, 4) == [1, 1, 1, 1]


def test_the_first_round_takes_in_turn_from_the_score_and_the_size():
    scores, sizes = [0.9, 0.8, 0.1, 0.2, 0.7], [10, 50, 40, 30, 20]
    # the two orders, rank by rank: score 0, size 1; score's second is 1, taken, size's is 2; score 4
    assert recalibrate.first_round(scores, sizes, 4) == [0, 1, 2, 4]
    assert recalibrate.first_round(scores, sizes, 1) == [0]
    assert recalibrate.first_round([1.0, 0.5], [9, 1], 5) == [0, 1]  # no more than the pool
    # labels that follow size reach the model through the size half of round 1, and the next
    # round follows them, where a first round by score alone would see sizes of one kind only
    rows = [{"score": 1 - i / 40, "params": i} for i in range(40)]  # score against size
    label = {i: i / 40 for i in range(40)}.__getitem__  # trained accuracy rises with size
    X = recalibrate.rank_features(rows)
    (first, _), (second, said) = recalibrate.rounds_of(X, [r["score"] for r in rows], [r["params"] for r in rows],
                                                       6, 2, label)
    assert first == [0, 39, 1] and said["fitted"] == first and min(second) >= 30


@pytest.fixture(scope="module")
def rounded(tmp_path_factory):
    """A search with two final rounds, and what it printed."""
    import contextlib
    import io

    cfg = config(tmp_path_factory.mktemp("rounds"))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = run_search(cfg, progress=False)
    return cfg, result, out.getvalue(), err.getvalue()


def test_rounds_record_their_round_the_predictions_and_the_model_fit(rounded):
    cfg, result, *_ = rounded
    trained = finalists(cfg)
    assert len(trained) == 4 == len(result.final)
    assert sorted(a["final_round"] for a in trained.values()) == [1, 1, 2, 2]
    later = [a for a in trained.values() if a["final_round"] == 2]
    assert all("predicted_accuracy" in a and a["predicted_std"] >= 0 for a in later)
    assert set(load_study(cfg.storage_url, "f").user_attrs["final_model"]) == {"2"}
    # round 1 is the best by score and the largest, in turn; round 2 never repeats it
    study = load_study(cfg.storage_url, "f")
    pool = sorted((t for t in study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
                   if not t.user_attrs["duplicate"] and not t.user_attrs["degenerate"]), key=lambda t: t.number)
    best, largest = (max(pool, key=key) for key in (lambda t: (t.values[0], -t.number),
                                                    lambda t: (t.user_attrs["params"], -t.number)))
    assert best is not largest  # else this check would not see the size's turn
    assert {n for n, a in trained.items() if a["final_round"] == 1} == {best.number, largest.number}


def test_a_resume_mid_round_trains_the_same_finalists(tmp_path, monkeypatch):
    whole = config(tmp_path, study="whole")
    run_search(whole, progress=False)
    import hypernas.finals as finals_module

    real, calls = finals_module.train, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:  # the second training of round 2
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cut = config(tmp_path, study="cut", hypernet=whole.hypernet_path)
    whole_again = config(tmp_path, study="whole2", hypernet=whole.hypernet_path)
    run_search(whole_again, progress=False)
    monkeypatch.setattr(finals_module, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(cut, progress=False)
    assert len(finalists(cut)) == 3
    monkeypatch.setattr(finals_module, "train", real)
    run_search(cut, progress=False)
    assert set(finalists(cut)) == set(finalists(whole_again))


def test_the_predicted_start_is_an_ordinary_trainable_module(tmp_path, mnist1d):
    cfg = config(tmp_path, top_k=0, final_rounds=1, trials=4)
    run_search(cfg, progress=False)
    ghn = load_hypernet(cfg.hypernet_path).model
    from hypernas.compile import compile_graph
    from hypernas.ghn.model import predict_weights
    from hypernas.graph import validate
    from search_spaces import nb201

    G = nb201.from_string(GOOD_CELL, 1, 10, **OPTIONS)
    model = compile_graph(G, 1)
    predicted_start(ghn, G, mnist1d.x_val)(model)
    predicted = predict_weights(ghn, [validate(G)])[0]
    assert all(torch.allclose(model.state_dict()[f"nodes.{k}"], v) for k, v in predicted.items())
    assert model.batch_stats is False and any(b.abs().sum() > 0 for n, b in model.named_buffers() if "running_mean" in n)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(mnist1d.x_train[:32]), mnist1d.y_train[:32])
    loss.backward()
    opt.step()
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if "weight" in k)


def test_train_init_from_a_hypernetwork_from_the_command_line(tmp_path, capsys):
    cfg = config(tmp_path, top_k=0, final_rounds=1, trials=4)
    run_search(cfg, progress=False)
    from hypernas.cli import main

    argv = ["train", "--space", "nb201", "--arch", GOOD_CELL, "--channels", "2", "--cells", "1", "--epochs", "1",
            "--json"]
    assert main(argv + ["--init-from", cfg.hypernet_path]) == 0
    capsys.readouterr()
    fails_cleanly(argv[:-1] + ["--channels", "4", "--init-from", cfg.hypernet_path], capsys, "was trained on space")


@pytest.mark.parametrize("change, named", [({"final_rounds": 0}, "final_rounds must be an integer >= 1"),
                                           ({"final_rounds": 5}, "final_rounds 5 is more rounds than top_k 4"),
                                           ({"final_init": "zeros"}, "final_init must be one of random, hypernet")])
def test_bad_final_options(change, named, tmp_path):
    with pytest.raises(HypernasError, match=named):
        replace(config(tmp_path), **change)


# ---- what is trained, and why; what `best` means ------------------------------------------------------------------


CUT_SPACE = '''
import networkx as nx


def cut(trial, *, in_channels, num_classes):
    """A conv, then an op that may cut the output off from the input."""
    G = nx.DiGraph()
    G.add_node("input", op="input", channels=in_channels)
    G.add_node("c", op="conv", channels=trial.suggest_categorical("width", [2, 4, 8]), kernel=3)
    G.add_node("m", op=trial.suggest_categorical("mid", ["relu", "zero"]))
    G.add_node("p", op="global_pool")
    G.add_node("l", op="linear", channels=num_classes)
    G.add_node("out", op="output")
    nx.add_path(G, ["input", "c", "m", "p", "l", "out"])
    return G
'''


def test_degenerate_networks_are_marked_never_finalists_and_said_when_they_top_the_ranking(tmp_path, monkeypatch):
    (tmp_path / "cut.py").write_text(CUT_SPACE)
    from hypernas.score import Scorer

    real = Scorer.score

    def flattering(self, graphs, keys=None, progress=False):  # as a weakly trained hypernetwork can
        return [replace(s, score=0.99) if s.degenerate else s for s in real(self, graphs, keys, progress)]

    monkeypatch.setattr(Scorer, "score", flattering)
    cfg = config(tmp_path, space=f"{tmp_path}/cut.py:cut", space_options={}, trials=16, top_k=2, final_rounds=1)
    with pytest.warns(UserWarning, match=r"the best score .* belongs to a degenerate network .* undertrained"):
        result = run_search(cfg, progress=False)
    done = load_study(cfg.storage_url, cfg.study).get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert all(t.user_attrs["degenerate"] == (t.params["mid"] == "zero") for t in done)  # marked, duplicates too
    assert any(t.user_attrs["degenerate"] for t in done) and any(t.values[0] == 0.99 for t in done)
    assert len(result.final) == 2 and not any(finalists(cfg)[r["trial"]]["degenerate"] for r in result.final)


def test_the_final_table_shows_each_picks_round_and_reason(rounded):
    cfg, result, out, err = rounded
    reasons = [(r["round"], r["reason"]) for r in result.final]
    assert reasons[:2] == [(1, "score #1"), (1, "size #1")] and [r for r, _ in reasons[2:]] == [2, 2]
    assert all(reason.startswith("predicted ") for _, reason in reasons[2:])  # the model's accuracy and its sd
    for r in result.final:
        assert finalists(cfg)[r["trial"]]["final_reason"] == r["reason"]
        line = next(line for line in out.splitlines() if line.split()[:1] == [str(r["trial"])])
        assert r["reason"] in line and line.rstrip().endswith(r["arch"])  # whole, as `hypernas train --arch` takes it
    assert "\\|" not in out and "final training" not in err  # no escapes in the terminal; progress=False is quiet


def test_best_is_the_pick_among_the_finalists_tied_with_the_best_for_export_and_plot(rounded, tmp_path, capsys):
    import json

    from hypernas.cli import main
    from hypernas.finals import best_trial

    cfg, result, *_ = rounded
    study = load_study(cfg.storage_url, cfg.study)
    tied = [r for r in result.final if r["tied"]]
    smallest = min(tied, key=lambda r: (r["params"], result.final.index(r)))["trial"]  # --final-pick smallest
    assert best_trial(study).number == smallest == study.user_attrs["final_picked"]
    assert all(finalists(cfg)[r["trial"]]["trained_tied"] == r["tied"] for r in result.final)
    assert main(["export", "--runs", cfg.runs, "--study", cfg.study, "--out", str(tmp_path / "e")]) == 0
    assert json.loads((tmp_path / "e" / "meta.json").read_text())["trial"] == smallest
    assert main(["plot", "arch", "--runs", cfg.runs, "--study", cfg.study, "--out", str(tmp_path / "a.png")]) == 0
    assert f"trial {smallest}" in capsys.readouterr().out  # says which trial it drew, and why


def test_the_ranking_plot_has_error_bars_marks_rounds_and_prints_no_nan(rounded, monkeypatch, tmp_path):
    import shutil

    from matplotlib.container import ErrorbarContainer

    from hypernas import plots
    from hypernas.optuna_private import annotate_trial

    cfg, *_ = rounded
    shutil.copytree(cfg.runs, tmp_path / "copy")
    cfg = replace(cfg, runs=str(tmp_path / "copy"))  # its own copy to spoil
    kept = []
    monkeypatch.setattr(plots, "save_figure", lambda plt, fig, path: kept.append(fig))
    study = load_study(cfg.storage_url, cfg.study)
    plots.plot_study(study, "ranking", "unused.png")
    ax = kept[-1].axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2 and {t.get_text() for t in ax.get_legend().get_texts()} == {"round 1", "round 2"}
    assert all(c.has_xerr and c.has_yerr for c in bars)
    for t in study.trials:  # every trained accuracy alike: tau is undefined
        if "trained_accuracy" in t.user_attrs:
            annotate_trial(study, t, user_attrs={"trained_accuracy": 0.5})
    plots.plot_study(load_study(cfg.storage_url, cfg.study), "ranking", "unused.png")
    assert "nan" not in kept[-1].axes[0].get_title() and "n/a" in kept[-1].axes[0].get_title()
