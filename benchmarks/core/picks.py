"""What a scorer picks: the true accuracy of its top 1 and the best of its top k, and the same for random picks.

Usage:
    first, best_of_3 = top_picks(scores, truth, 3, np.random.default_rng(0))
    first, best_of_3 = random_picks(truth, 3)   # exact expectations
"""

from __future__ import annotations

import math

import numpy as np

TIE_DRAWS = 200  # random tie-breaks averaged, so that the order of the table favours no scorer


def top_picks(scores: np.ndarray, truth: np.ndarray, k: int, rng: np.random.Generator,
              draws: int = TIE_DRAWS) -> tuple[float, float]:
    """(true accuracy of the top-1 pick, best true accuracy among the top k), expected over
    `draws` random tie-breaks of the scores (exact where no two scores tie). Inside a
    bootstrap one draw per resample serves: the resamples average over the tie-breaks."""
    scores, truth = np.asarray(scores), np.asarray(truth)
    if len(np.unique(scores)) == len(scores):
        order = np.argsort(-scores)
        return float(truth[order[0]]), float(truth[order[:k]].max())
    firsts, bests = [], []
    for _ in range(draws):
        order = np.lexsort((rng.random(len(scores)), -scores))
        firsts.append(truth[order[0]])
        bests.append(truth[order[:k]].max())
    return float(np.mean(firsts)), float(np.mean(bests))


def random_picks(truth: np.ndarray, k: int) -> tuple[float, float]:
    """The expected true accuracy of one random pick, and of the best of k picks without
    replacement: P(the best is the i-th smallest) = C(i-1, k-1) / C(n, k)."""
    v, n = np.sort(truth), len(truth)
    k = min(k, n)
    weights = np.array([math.comb(i, k - 1) for i in range(n)], dtype=float) / math.comb(n, k)
    return float(v.mean()), float((weights * v).sum())
