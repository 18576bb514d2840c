"""A small model of trained accuracy, refitted on every finalist the search trains.

The hypernetwork's score is miscalibrated, and how badly depends on the data: on one table
size ranks networks better than the score, on another worse. No fixed mix is right for every
dataset, but each finalist trained is a true label, for free. So the final stage trains in
rounds, and after each one fits accuracy from what is known of every scored architecture.

The features are the ranks (0 to 1 over the scored pool) of the score, its spread over draws,
the parameter count, the FLOPs and, where measured, the latency: ranks, so that no scale
dominates, and few features, so that five labels cannot be overfitted. The model is
scikit-learn's Bayesian ridge regression, linear in those ranks with a prior that shrinks
every weight. Round 1 takes in turn from the score's order and the size's, so that its labels
span both and the model can learn which of the two this data rewards; later rounds take the
model's predicted mean. Its spread is recorded beside it, not added: an upper confidence bound
spent trainings on uncertain networks that were rarely the best (docs/history.md).

Usage:
    X = rank_features(pool)                      # (pool, features)
    model = fit(X[trained], labels)              # trained: indices into the pool
    mean, std = predict(model, X)
    picks = next_round(mean, exclude=trained, k=2)
    for picks, said in rounds_of(X, scores, sizes, total=5, rounds=2, label=trained_accuracy_of): ...
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy import stats

FEATURES = ("score", "score_std", "params", "flops", "latency_ms")


def rank_features(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """(n, f) ranks in [0, 1] of each feature every row has; a feature missing anywhere, or
    constant, is left out (it tells the rows nothing apart)."""
    columns = []
    for name in FEATURES:
        values = [r.get(name) for r in rows]
        if any(v is None for v in values) or len(set(values)) < 2:
            continue
        ranks = stats.rankdata(values)
        columns.append((ranks - 1) / max(1, len(rows) - 1))
    return np.column_stack(columns) if columns else np.zeros((len(rows), 0))


def fit(X: np.ndarray, y: Sequence[float]) -> Any:
    """Bayesian ridge regression of the labels `y` on the rows `X`."""
    from sklearn.linear_model import BayesianRidge

    return BayesianRidge().fit(X, np.asarray(y, dtype=float))


def predict(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation) of the predicted accuracy of every row."""
    mean, std = model.predict(X, return_std=True)
    return mean, std


def next_round(mean: np.ndarray, exclude: set[int], k: int) -> list[int]:
    """The `k` rows not in `exclude` of largest predicted mean, best first (ties by row)."""
    return sorted((i for i in range(len(mean)) if i not in exclude), key=lambda i: (-mean[i], i))[:k]


def first_round(scores: Sequence[float], sizes: Sequence[float], k: int) -> list[int]:
    """`k` rows taken in turn from the order of the score and of the size, largest first (ties by
    row), so that the labels vary in both: the top by score alone would give the model little
    to learn the size's worth from."""
    return list(first_round_reasons(scores, sizes, k))


def first_round_reasons(scores: Sequence[float], sizes: Sequence[float], k: int) -> dict[int, str]:
    """`first_round`'s rows in order, each with the order it was taken from: "score #2" is the
    second by score, "size #1" the largest."""
    by_score = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    by_size = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    picks: dict[int, str] = {}
    for rank, pair in enumerate(zip(by_score, by_size), start=1):
        for i, order in zip(pair, ("score", "size")):
            picks.setdefault(i, f"{order} #{rank}")
    return dict(list(picks.items())[:k])


def leave_one_out(X: np.ndarray, y: Sequence[float]) -> dict[str, float | None]:
    """How well the model predicts each label from the others: Kendall tau of the held-out
    predictions against the labels, and their mean absolute error."""
    y = np.asarray(y, dtype=float)
    if len(y) < 3:
        return {"kendall_tau": None, "mean_abs_error": None}
    held_out = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        held_out.append(float(fit(X[keep], y[keep]).predict(X[i : i + 1])[0]))
    tau = stats.kendalltau(held_out, y).statistic
    return {"kendall_tau": None if math.isnan(tau) else float(tau),
            "mean_abs_error": float(np.mean(np.abs(np.array(held_out) - y)))}


def rounds_of(X: np.ndarray, scores: Sequence[float], sizes: Sequence[float], total: int, rounds: int,
              label: Callable[[int], float]) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """`total` trainings in `rounds` rounds over the rows of `X`: (the round's rows, what the
    model said) per round. Round 1 is `first_round`'s; each later one refits the model on
    `label(row)` of every row taken so far, read when the round starts (so a consumer trains a
    round's rows before asking for the next), and takes `next_round`'s.
    What the model said: the rows it was fitted on and their labels, its mean and std for all."""
    chosen: list[int] = []
    for r, size in enumerate(round_sizes(total, rounds), start=1):
        said: dict[str, Any] = {}
        if r == 1:
            said["reasons"] = first_round_reasons(scores, sizes, size)
            picks = list(said["reasons"])
        else:
            labels = [label(i) for i in chosen]
            mean, std = predict(fit(X[chosen], labels), X)
            picks = next_round(mean, set(chosen), size)
            said = {"fitted": list(chosen), "labels": labels, "mean": mean, "std": std}
        chosen += picks
        yield picks, said


def round_sizes(total: int, rounds: int) -> list[int]:
    """`total` trainings in `rounds` rounds, as even as they go, larger rounds first."""
    return [total // rounds + (1 if i < total % rounds else 0) for i in range(rounds)]
