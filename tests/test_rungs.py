"""Successive halving over the best scored architectures: promotion, the cost, reuse of what is known."""

from __future__ import annotations

import pytest

from hypernas.errors import OptionError
from hypernas.rungs import RungResult, cost, promoted, successive_halving


def quality(c: str, epochs: int) -> RungResult:
    """A fake rung: candidate "a" learns fast, "d" slowly but best; longer rungs tell them apart."""
    final = {"a": 0.80, "b": 0.70, "c": 0.60, "d": 0.90, "e": 0.50, "f": 0.40}[c]
    early = {"a": 0.70, "b": 0.60, "c": 0.55, "d": 0.54, "e": 0.30, "f": 0.20}[c]
    acc = early if epochs == 1 else final
    return RungResult(epochs, loss=1 - acc, accuracy=acc)


def test_the_best_fraction_is_promoted_rung_by_rung():
    calls = []
    outcome = successive_halving(list("abcdef"), (1, 3), 0.5, lambda c, e: calls.append((c, e)) or quality(c, e))
    assert [c for c, e in calls if e == 1] == list("abcdef") and [c for c, e in calls if e == 3] == ["a", "b", "c"]
    assert outcome.survivors == ["a", "b", "c"]  # d was cut at rung 1: slow learners lose to short rungs
    assert outcome.trainings == 9 and outcome.epochs == 6 + 9 == cost(6, (1, 3), 0.5)
    assert outcome.stopped["d"] == "cut at rung 1 (1 epochs): 4 of 6 by validation loss"
    assert outcome.stopped["a"] == "through every rung: 1 of 3 after 3 epochs"
    assert outcome.results["b"][3].accuracy == 0.70


def test_known_results_are_reused_and_ties_keep_the_score_order():
    known = {"a": {1: RungResult(1, 0.5, 0.5)}, "b": {1: RungResult(1, 0.5, 0.5)}}
    outcome = successive_halving(["b", "a"], (1,), 0.5, lambda c, e: pytest.fail("nothing to train"), known=known)
    assert outcome.survivors == ["b", "a"] and outcome.trainings == 0


def test_accuracy_may_rank_instead_of_loss_and_bad_schedules_are_refused():
    outcome = successive_halving(list("abcdef"), (1,), 1 / 3, quality, signal="accuracy")
    assert outcome.survivors == ["a", "b", "c", "d", "e", "f"]  # one rung: everyone survives it, ranked
    assert promoted(6, 1 / 3) == 2 and promoted(1, 0.1) == 1
    for schedule in ((3, 1), (), (0, 2), (2, 2)):
        with pytest.raises(OptionError, match="increasing"):
            successive_halving(["a"], schedule, 0.5, quality)
    with pytest.raises(OptionError, match="keep"):
        successive_halving(["a"], (1,), 0.0, quality)
    with pytest.raises(OptionError, match="signal"):
        successive_halving(["a"], (1,), 0.5, quality, signal="vibes")
