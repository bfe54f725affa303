"""Bootstrap confidence intervals: for one run, and for the paired difference of two runs over the same users or queries."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _resampled_means(values: np.ndarray, samples: int, seed: int) -> np.ndarray:
    generator = np.random.default_rng(seed)
    picks = generator.integers(0, len(values), size=(samples, len(values)))
    return values[picks].mean(axis=1)


def bootstrap_ci(values: np.ndarray, samples: int = 1000, seed: int = 42) -> dict[str, float]:
    """Mean of per-user values with a 95% percentile bootstrap interval; NaN users (no target) are left out."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "users": 0}
    means = _resampled_means(values, samples, seed)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(values.mean()), "low": float(low), "high": float(high), "users": int(values.size)}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int = 1000, seed: int = 42) -> dict[str, float]:
    """95% interval of mean(a - b) resampling the same users for both runs; significant when it excludes 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired bootstrap needs per-user values of the same users in the same order")
    both = ~(np.isnan(a) | np.isnan(b))
    result = bootstrap_ci(a[both] - b[both], samples, seed)
    return {
        "difference": result["mean"],
        "low": result["low"],
        "high": result["high"],
        "users": result["users"],
        "significant": bool(result["users"] and (result["low"] > 0 or result["high"] < 0)),
    }


def paired_comparison(baseline: np.ndarray, candidate: np.ndarray, resamples: int = 2000, confidence: float = 0.95, seed: int = 42) -> dict[str, float]:
    """Mean difference (candidate - baseline) over queries with a percentile CI at any confidence, and a two-sided p-value."""
    baseline = np.asarray(baseline, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if baseline.shape != candidate.shape or baseline.ndim != 1 or len(baseline) == 0:
        raise ValueError("paired bootstrap needs two equally long, non-empty 1-D arrays of per-query values")
    differences = candidate - baseline
    means = _resampled_means(differences, resamples, seed)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    # Share of resampled means on the other side of zero, doubled: how often the sign of the difference is a fluke.
    p_value = min(1.0, 2.0 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return {
        "baseline": float(baseline.mean()),
        "candidate": float(candidate.mean()),
        "difference": float(differences.mean()),
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_value": p_value,
        "queries": len(differences),
    }


def paired_bootstrap_statistic(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    truth: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    groups: np.ndarray,
    samples: int = 1000,
    seed: int = 42,
) -> dict[str, float]:
    """95% interval of statistic(truth, a) - statistic(truth, b) for a statistic that is not a mean (e.g. macro-F1).

    Whole groups (users) are resampled with replacement, since one user's rows are not independent of each other.
    """
    truth, a, b = np.asarray(truth), np.asarray(a), np.asarray(b)
    labels, group_of_row = np.unique(np.asarray(groups), return_inverse=True)
    rows_of_group = np.split(np.argsort(group_of_row, kind="stable"), np.cumsum(np.bincount(group_of_row))[:-1])
    generator = np.random.default_rng(seed)
    differences = np.empty(samples)
    for sample in range(samples):
        rows = np.concatenate([rows_of_group[g] for g in generator.integers(0, len(labels), size=len(labels))])
        differences[sample] = statistic(truth[rows], a[rows]) - statistic(truth[rows], b[rows])
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "difference": float(statistic(truth, a) - statistic(truth, b)),
        "low": float(low),
        "high": float(high),
        "users": int(len(labels)),
        "significant": bool(low > 0 or high < 0),
    }
