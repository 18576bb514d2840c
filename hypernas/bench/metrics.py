"""Ranking metrics: how well a scorer orders architectures by their true accuracy.

Usage:
    ranking_metrics(scores, truth)  # {"kendall_tau": ..., "spearman_rho": ..., ...}
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from hypernas.errors import HypernasError


def ranking_metrics(scores: list[float], truth: list[float], top_fraction: float = 0.1) -> dict[str, float]:
    """Kendall tau, Spearman rho, precision at the top fraction, and the true value of the top-1 pick.

    Higher scores must mean better architectures. Precision at top 10%: the share of the
    scorer's top 10% that are in the true top 10%. Ties in the score pick the first.
    """
    s, t = np.asarray(scores, dtype=float), np.asarray(truth, dtype=float)
    if len(s) != len(t) or len(s) < 2:
        raise HypernasError(f"need two equally long lists of at least 2 values, got {len(s)} and {len(t)}")
    k = max(1, int(round(len(s) * top_fraction)))
    top_pred = set(np.argsort(-s, kind="stable")[:k])
    top_true = set(np.argsort(-t, kind="stable")[:k])
    tau = stats.kendalltau(s, t).statistic
    rho = stats.spearmanr(s, t).statistic
    return {
        "kendall_tau": float(tau) if not math.isnan(tau) else 0.0,  # a constant scorer ranks nothing
        "spearman_rho": float(rho) if not math.isnan(rho) else 0.0,
        "precision_at_top": len(top_pred & top_true) / k,
        "top1_true": float(t[int(np.argmax(s))]),
    }
