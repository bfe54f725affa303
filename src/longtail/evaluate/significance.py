"""Paired bootstrap confidence intervals for the difference between two runs over the same queries."""

from __future__ import annotations

import numpy as np


def paired_bootstrap(baseline: np.ndarray, candidate: np.ndarray, resamples: int = 2000, confidence: float = 0.95, seed: int = 42) -> dict[str, float]:
    """Mean difference (candidate - baseline) with a percentile CI from resampling queries, and a two-sided p-value."""
    baseline = np.asarray(baseline, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if baseline.shape != candidate.shape or baseline.ndim != 1 or len(baseline) == 0:
        raise ValueError("paired bootstrap needs two equally long, non-empty 1-D arrays of per-query values")
    differences = candidate - baseline
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[samples].mean(axis=1)
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
