"""Differential privacy: the contribution bound behind the sensitivity holds, and the released noise is Laplace(Δ/ε)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from longtail.core.config import DifferentialPrivacyConfig
from longtail.core.errors import PrivacyError
from longtail.data.adapters import Dataset, load_dataset
from longtail.privacy.dp import (
    affinity_counts,
    bounded_category_contributions,
    bounded_category_counts,
    category_domain,
    dp_affinities,
    dp_category_counts,
    laplace_scale,
)


@pytest.fixture(scope="module")
def scientific(datasets_root: Path) -> Dataset:
    return load_dataset("scientific", datasets_root)


def test_every_user_contributes_at_most_the_stated_sensitivity(scientific: Dataset) -> None:
    bounds = DifferentialPrivacyConfig(max_categories_per_user=3, max_count_per_category=2)
    domain = category_domain(scientific.items)
    per_user = (
        bounded_category_contributions(scientific.events, scientific.items, bounds, 7, domain)
        .group_by("user_id")
        .agg(pl.len().alias("categories"), pl.col("contribution").max().alias("most"), pl.col("contribution").sum().alias("l1"))
    )
    assert per_user.get_column("categories").max() == 3
    assert per_user.get_column("most").max() == 2
    assert per_user.get_column("l1").max() == 6 == dp_category_counts(scientific.events, scientific.items, bounds, 7).sensitivity


def test_removing_one_user_moves_the_bounded_histogram_by_at_most_the_sensitivity(scientific: Dataset) -> None:
    bounds = DifferentialPrivacyConfig(max_categories_per_user=5, max_count_per_category=1)
    full = bounded_category_counts(scientific.events, scientific.items, bounds, 3).get_column("count").to_numpy()
    heaviest = scientific.events.group_by("user_id").len().sort("len", descending=True).get_column("user_id").head(5)
    for user in heaviest:
        without = scientific.events.filter(pl.col("user_id") != user)
        moved = np.abs(full - bounded_category_counts(without, scientific.items, bounds, 3).get_column("count").to_numpy()).sum()
        assert 0 < moved <= 5


@pytest.mark.parametrize("epsilon", [0.5, 2.0])
def test_released_counts_error_matches_the_configured_epsilon(scientific: Dataset, epsilon: float) -> None:
    bounds = DifferentialPrivacyConfig(epsilon=epsilon, max_categories_per_user=5, max_count_per_category=1)
    releases = 60
    # Each release: its own seed, so its own bounding choice and noise; the error is against that seed's exact counts.
    errors = np.concatenate(
        [
            dp_category_counts(scientific.events, scientific.items, bounds, seed).table.get_column("count").to_numpy()
            - bounded_category_counts(scientific.events, scientific.items, bounds, seed).get_column("count").to_numpy()
            for seed in range(releases)
        ]
    )
    scale = laplace_scale(5.0, epsilon)
    assert errors.size == releases * 776
    assert abs(np.mean(errors)) < 0.03 * scale
    assert np.mean(np.abs(errors)) == pytest.approx(scale, rel=0.02)  # E|Laplace(0, b)| = b = Δ/ε
    assert stats.kstest(errors, "laplace", args=(0, scale)).pvalue > 0.01
    # The test has power: the same errors reject a scale 10% off, and a Gaussian of the same variance.
    assert stats.kstest(errors, "laplace", args=(0, 1.1 * scale)).pvalue < 1e-6
    assert stats.kstest(errors, "norm", args=(0, np.sqrt(2) * scale)).pvalue < 1e-6


def test_affinity_noise_is_event_level_laplace_and_affinities_are_distributions(scientific: Dataset) -> None:
    domain = category_domain(scientific.items)
    users, counts = affinity_counts(scientific.events, scientific.items, domain)
    release = dp_affinities(scientific.events, scientific.items, epsilon=1.0, seed=11)
    assert release.table.height == len(users) == 8442 and release.domain == tuple(domain)
    noisy = np.stack(release.table.get_column("noisy_count").to_numpy())
    errors = (noisy - counts).ravel()
    assert np.mean(np.abs(errors)) == pytest.approx(1.0, rel=0.01)
    assert stats.kstest(errors[:200_000], "laplace", args=(0, 1.0)).pvalue > 0.01
    affinity = np.stack(release.table.get_column("affinity").to_numpy())
    assert np.all(affinity >= 0) and np.allclose(affinity.sum(axis=1), 1.0)


def test_huge_epsilon_returns_the_exact_aggregates(scientific: Dataset) -> None:
    bounds = DifferentialPrivacyConfig(epsilon=1e9)
    exact = bounded_category_counts(scientific.events, scientific.items, bounds, 5)
    release = dp_category_counts(scientific.events, scientific.items, bounds, 5)
    assert np.allclose(release.table.get_column("count").to_numpy(), exact.get_column("count").to_numpy(), atol=1e-6)
    users, counts = affinity_counts(scientific.events, scientific.items, category_domain(scientific.items))
    affinity = np.stack(dp_affinities(scientific.events, scientific.items, 1e9, 5).table.get_column("affinity").to_numpy())
    assert np.allclose(affinity, counts / counts.sum(axis=1, keepdims=True), atol=1e-6)


def test_releases_are_reproducible_from_the_seed(scientific: Dataset) -> None:
    bounds = DifferentialPrivacyConfig(epsilon=1.0)
    first = dp_category_counts(scientific.events, scientific.items, bounds, 42).table
    assert first.equals(dp_category_counts(scientific.events, scientific.items, bounds, 42).table)
    assert not first.equals(dp_category_counts(scientific.events, scientific.items, bounds, 43).table)


def test_non_positive_epsilon_is_refused() -> None:
    with pytest.raises(PrivacyError, match="epsilon"):
        laplace_scale(1.0, 0.0)


def test_threshold_keeps_noise_off_the_categories_a_user_never_touched(scientific: Dataset) -> None:
    _, counts = affinity_counts(scientific.events, scientific.items, category_domain(scientific.items))
    untouched = counts == 0

    def mass_on_untouched(threshold: float | None) -> float:
        release = dp_affinities(scientific.events, scientific.items, 8.0, 3, threshold=threshold)
        affinity = np.stack(release.table.get_column("affinity").to_numpy())
        return float(np.mean(np.where(untouched, affinity, 0.0).sum(axis=1)))

    # Clipping at zero lets 775 small noisy cells outweigh a 7-event history; b·ln(categories) does not.
    assert mass_on_untouched(None) < 0.2
    assert mass_on_untouched(0.0) > 0.8
