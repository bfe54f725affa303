"""Differential privacy for released aggregates: Laplace noise over contribution-bounded category counts and affinities."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from longtail.core.config import DifferentialPrivacyConfig
from longtail.core.errors import PrivacyError


@dataclass(frozen=True)
class Release:
    """A noisy aggregate plus the guarantee it was made under: ε, the L1 sensitivity and the Laplace scale."""

    table: pl.DataFrame
    epsilon: float
    sensitivity: float
    scale: float
    unit: str  # what one neighbouring dataset adds or removes: a "user" or an "event"
    domain: tuple[str, ...]  # the categories, in the order of every released vector


def laplace_scale(sensitivity: float, epsilon: float) -> float:
    """The Laplace scale b = Δ/ε that makes a query with L1 sensitivity Δ ε-differentially private."""
    if epsilon <= 0 or sensitivity <= 0:
        raise PrivacyError(f"epsilon and sensitivity must be positive (got epsilon={epsilon}, sensitivity={sensitivity})")
    return sensitivity / epsilon


def laplace_mechanism(values: np.ndarray, sensitivity: float, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """`values` plus independent Laplace(0, Δ/ε) noise in every cell."""
    return values + rng.laplace(0.0, laplace_scale(sensitivity, epsilon), size=np.shape(values))


def category_domain(items: pl.DataFrame) -> list[str]:
    """The released categories: every category of the public catalogue, so no category appears because of one user."""
    return sorted(items.get_column("category").drop_nulls().unique().to_list())


def _events_with_category(events: pl.DataFrame, items: pl.DataFrame, domain: list[str]) -> pl.DataFrame:
    categories = items.select("item_id", "category").unique("item_id", keep="first", maintain_order=True)
    return events.select("user_id", "item_id").join(categories, on="item_id", how="inner").filter(pl.col("category").is_in(domain))


def bounded_category_contributions(events: pl.DataFrame, items: pl.DataFrame, bounds: DifferentialPrivacyConfig, seed: int, domain: list[str]) -> pl.DataFrame:
    """Each user's (user_id, category, contribution) after capping: at most `max_count_per_category` per category
    and at most `max_categories_per_user` categories (a seeded pseudo-random choice among the user's own), so removing
    one user changes the category histogram by at most their product in L1."""
    per_pair = (
        _events_with_category(events, items, domain)
        .group_by("user_id", "category")
        .agg(pl.len().clip(upper_bound=bounds.max_count_per_category).alias("contribution"))
    )
    # A seeded hash of (user, category) picks which categories a heavy user keeps: it depends on that user's rows only,
    # so adding or removing someone else never changes this user's choice (the sensitivity bound is exact).
    key = pl.concat_str("user_id", "category", separator="\x1f").hash(seed)
    return (
        per_pair.filter(key.rank("ordinal").over("user_id") <= bounds.max_categories_per_user)
        .with_columns(pl.col("contribution").cast(pl.Int64))
        .sort("user_id", "category")
    )


def bounded_category_counts(
    events: pl.DataFrame, items: pl.DataFrame, bounds: DifferentialPrivacyConfig, seed: int, domain: list[str] | None = None
) -> pl.DataFrame:
    """Exact (category, count) over the whole domain after per-user bounding: what the noisy release estimates."""
    domain = category_domain(items) if domain is None else domain
    sums = bounded_category_contributions(events, items, bounds, seed, domain).group_by("category").agg(pl.col("contribution").sum().alias("count"))
    return (
        pl.DataFrame({"category": domain}, schema={"category": pl.String})
        .join(sums, on="category", how="left")
        .with_columns(pl.col("count").fill_null(0).cast(pl.Float64))
    )


def dp_category_counts(events: pl.DataFrame, items: pl.DataFrame, bounds: DifferentialPrivacyConfig, seed: int, domain: list[str] | None = None) -> Release:
    """Category popularity with user-level ε-DP: bounded counts plus Laplace noise with Δ = categories × per-category cap."""
    exact = bounded_category_counts(events, items, bounds, seed, domain)
    sensitivity = float(bounds.max_categories_per_user * bounds.max_count_per_category)
    # The noise stream is separate from the bounding stream so that changing one never shifts the other.
    rng = np.random.default_rng([seed, 1])
    noisy = laplace_mechanism(exact.get_column("count").to_numpy(), sensitivity, bounds.epsilon, rng)
    table = exact.with_columns(pl.Series("count", noisy))
    return Release(table, bounds.epsilon, sensitivity, laplace_scale(sensitivity, bounds.epsilon), "user", tuple(exact.get_column("category")))


def affinity_counts(events: pl.DataFrame, items: pl.DataFrame, domain: list[str], users: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Users and their event counts per domain category, as a dense users × categories matrix.
    By default the users are every user in `events`, so a row exists even without any event in the domain."""
    # The user list must not depend on which categories a user touched, or a row's presence would leak it.
    users = sorted(events.get_column("user_id").drop_nulls().unique().to_list()) if users is None else users
    pairs = _events_with_category(events, items, domain).group_by("user_id", "category").agg(pl.len().alias("n"))
    user_index = pl.DataFrame({"user_id": users, "row": np.arange(len(users))}, schema={"user_id": pl.String, "row": pl.Int64})
    category_index = pl.DataFrame({"category": domain, "col": np.arange(len(domain))}, schema={"category": pl.String, "col": pl.Int64})
    located = pairs.join(user_index, on="user_id").join(category_index, on="category")
    matrix = np.zeros((len(users), len(domain)))
    matrix[located.get_column("row").to_numpy(), located.get_column("col").to_numpy()] = located.get_column("n").to_numpy()
    return users, matrix


def normalise_affinities(counts: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Rows with cells at or below `threshold` zeroed, scaled to sum to one (uniform when nothing is left).
    Post-processing of a release, so the privacy guarantee is unchanged."""
    kept = np.where(counts > threshold, counts, 0.0)
    totals = kept.sum(axis=1, keepdims=True)
    uniform = np.full_like(kept, 1.0 / max(kept.shape[1], 1))
    return np.divide(kept, totals, out=uniform, where=totals > 0)


def dp_affinities(
    events: pl.DataFrame,
    items: pl.DataFrame,
    epsilon: float,
    seed: int,
    domain: list[str] | None = None,
    users: list[str] | None = None,
    threshold: float | None = None,
) -> Release:
    """Every user's category-affinity vector with event-level ε-DP (adding or removing one event moves one count by 1):
    one row per user with the noisy counts and the affinities derived from them, in `domain` order.
    Noisy counts at or below `threshold` do not count towards the affinities; the default b·ln(categories) lets
    through fewer than one empty category per user on average, instead of spreading noise over all of them."""
    domain = category_domain(items) if domain is None else domain
    users, counts = affinity_counts(events, items, domain, users)
    scale = laplace_scale(1.0, epsilon)
    noisy = laplace_mechanism(counts, 1.0, epsilon, np.random.default_rng([seed, 2]))
    cut = scale * np.log(max(len(domain), 1)) if threshold is None else threshold
    width = len(domain)
    table = pl.DataFrame(
        {
            "user_id": pl.Series(users, dtype=pl.String),
            "noisy_count": pl.Series(noisy, dtype=pl.Array(pl.Float64, width)),
            "affinity": pl.Series(normalise_affinities(noisy, cut), dtype=pl.Array(pl.Float64, width)),
        }
    )
    return Release(table, epsilon, 1.0, scale, "event", tuple(domain))
