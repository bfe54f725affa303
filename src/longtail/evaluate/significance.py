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
    return {"difference": result["mean"], "low": result["low"], "high": result["high"], "users": result["users"],
            "significant": bool(result["users"] and (result["low"] > 0 or result["high"] < 0))}


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


def paired_metric_bootstrap(metric: Callable[[np.ndarray, np.ndarray], float], truth: np.ndarray, baseline: np.ndarray, candidate: np.ndarray,
                            samples: int = 1000, seed: int = 42) -> dict[str, float]:
    """95% interval of metric(truth, candidate) - metric(truth, baseline), resampling the same rows for both.

    For metrics that are not a mean over rows (macro-F1, per-class recall over a resampled test set), where
    `paired_bootstrap` over per-row values does not apply.
    """
    truth, baseline, candidate = np.asarray(truth), np.asarray(baseline), np.asarray(candidate)
    if not len(truth) == len(baseline) == len(candidate) or len(truth) == 0:
        raise ValueError("paired bootstrap needs predictions of both runs for the same, non-empty set of rows")
    generator = np.random.default_rng(seed)
    picks = generator.integers(0, len(truth), size=(samples, len(truth)))
    differences = np.array([metric(truth[p], candidate[p]) - metric(truth[p], baseline[p]) for p in picks])
    low, high = np.percentile(differences, [2.5, 97.5])
    return {"difference": float(metric(truth, candidate) - metric(truth, baseline)), "low": float(low), "high": float(high),
            "rows": len(truth), "significant": bool(low > 0 or high < 0)}
