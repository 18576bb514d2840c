"""Scoring: batched, cached by canonical hash, reproducible, on the validation slice only."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from conftest import DEAD_CELL, GOOD_CELL, fit_config, small_nb201

from hypernas import cli, score
from hypernas.cli import main
from hypernas.config import SearchConfig
from hypernas.errors import HypernasError
from hypernas.ghn.fit import fit_hypernet
from hypernas.score import Scorer
from hypernas.spaces import get_space

TINY = fit_config(steps=4, meta_batch=2, batch_size=16, hidden=16, rounds=2, rank=4, warmup=2)
OPTIONS = {"channels": 4, "cells": 1}
# the same network as GOOD_CELL with its sum inputs given in another order is impossible in
# NB201 strings, but "skip then conv" and "conv" are the same network:
SAME_A = "|skip_connect~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"
SAME_B = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|skip_connect~2|"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, mnist1d):
    path = str(tmp_path_factory.mktemp("ghn") / "hypernet.pt")
    fit_hypernet(get_space("nb201"), OPTIONS, mnist1d, TINY, out=path, progress=False)
    return path


def test_scores_have_uncertainty_costs_and_hash(checkpoint, mnist1d):
    scorer = Scorer.from_checkpoint(checkpoint, mnist1d, samples=3)
    (s,) = scorer.score([small_nb201(GOOD_CELL)])
    assert 0 <= s.accuracy <= 1 and s.accuracy_std >= 0 and s.loss > 0 and s.loss_std > 0
    assert 0 < s.score <= 1 and s.score_std > 0
    assert s.samples == 3 and s.params > 0 and s.flops > 0 and len(s.hash) == 16


def test_isomorphic_duplicates_are_scored_once(checkpoint, mnist1d):
    scorer = Scorer.from_checkpoint(checkpoint, mnist1d, samples=2)
    graphs = [small_nb201(SAME_A), small_nb201(GOOD_CELL), small_nb201(SAME_B), small_nb201(SAME_A)]
    a, good, b, a2 = scorer.score(graphs)
    assert a == b == a2 and a != good
    assert len(scorer.cache) == 2 and scorer.hits == 2
    scorer.score([small_nb201(GOOD_CELL)])
    assert scorer.hits == 3 and len(scorer.cache) == 2


def test_scores_do_not_depend_on_batching_or_order(checkpoint, mnist1d):
    graphs = [small_nb201(GOOD_CELL), small_nb201(SAME_A), small_nb201(DEAD_CELL)]
    one = Scorer.from_checkpoint(checkpoint, mnist1d, samples=2, batch=1).score(graphs)
    rev = Scorer.from_checkpoint(checkpoint, mnist1d, samples=2, batch=64).score(graphs[::-1])[::-1]
    for x, y in zip(one, rev):
        assert x.hash == y.hash and abs(x.loss - y.loss) < 1e-5 and abs(x.accuracy - y.accuracy) < 1e-6


def test_degenerate_architecture_scores_at_chance(checkpoint, mnist1d):
    (s,) = Scorer.from_checkpoint(checkpoint, mnist1d).score([small_nb201(DEAD_CELL)])
    assert s.degenerate and s.accuracy < 0.2 and s.score < 0.2


def test_one_draw_score_is_the_likelihood_of_the_loss(checkpoint, mnist1d):
    (s,) = Scorer.from_checkpoint(checkpoint, mnist1d, samples=1).score([small_nb201(GOOD_CELL)])
    assert s.score == pytest.approx(math.exp(-s.loss)) and s.score_std == 0


def test_train_split_scores_on_as_many_training_samples(checkpoint, mnist1d):
    graphs = [small_nb201(GOOD_CELL), small_nb201(SAME_A)]
    n = len(mnist1d.x_val)
    on_train = Scorer.from_checkpoint(checkpoint, mnist1d, split="train").score(graphs)
    # the same as scoring a dataset whose validation slice is the train split's first n samples
    moved = dataclasses.replace(mnist1d, x_val=mnist1d.x_train[:n], y_val=mnist1d.y_train[:n])
    assert on_train == Scorer.from_checkpoint(checkpoint, moved).score(graphs)
    assert on_train != Scorer.from_checkpoint(checkpoint, mnist1d).score(graphs)
    with pytest.raises(HypernasError, match="score split must be one of val, train, not 'test'"):
        Scorer.from_checkpoint(checkpoint, mnist1d, split="test")
    assert cli.SPLITS == score.SPLITS  # the command line's own copy (hypernas.cli says why)


def test_score_command(checkpoint, tmp_path, capsys):
    archs = tmp_path / "archs.txt"
    archs.write_text(f"{GOOD_CELL}\n# a comment\n\n{SAME_A}\n{SAME_B}\n")
    assert main(["score", "--hypernet", checkpoint, "--archs", str(archs), "--json", "--samples", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["arch"] for r in rows] == [GOOD_CELL, SAME_A, SAME_B]
    assert rows[1]["hash"] == rows[2]["hash"] and rows[1]["accuracy"] == rows[2]["accuracy"]
    assert {"score", "score_std", "accuracy", "accuracy_std", "loss", "loss_std", "params", "flops", "hash"} <= set(rows[0])
    assert main(["score", "--hypernet", checkpoint, "--archs", str(archs)]) == 0
    assert "±" in capsys.readouterr().out
    assert main(["score", "--hypernet", checkpoint, "--archs", str(archs), "--json"]) == 0  # the search's default draws
    assert {json.loads(line)["samples"] for line in capsys.readouterr().out.splitlines()} == {SearchConfig.samples}
    assert main(["score", "--hypernet", checkpoint, "--archs", str(archs), "--json", "--samples", "2",
                 "--split", "train"]) == 0
    on_train = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["hash"] for r in on_train] == [r["hash"] for r in rows] and on_train[0]["loss"] != rows[0]["loss"]


def test_score_command_bad_input(checkpoint, tmp_path, capsys):
    archs = tmp_path / "bad.txt"
    archs.write_text(f"{GOOD_CELL}\n|nope~0|+|none~0|none~1|+|none~0|none~1|none~2|\n")
    assert main(["score", "--hypernet", checkpoint, "--archs", str(archs)]) == 1
    assert "line 2" in capsys.readouterr().err
    assert main(["score", "--hypernet", checkpoint, "--archs", str(tmp_path / "none.txt")]) == 1
    assert "cannot read architectures" in capsys.readouterr().err
    assert main(["score", "--hypernet", str(archs), "--archs", str(archs)]) == 1
    assert "corrupt or truncated" in capsys.readouterr().err
    assert main(["score", "--hypernet", checkpoint, "--archs", str(archs), "--dataset", "digits"]) == 1
    assert "trained for" in capsys.readouterr().err
