"""User profiles on real demo users: folding events one at a time equals the batch build, and each part says what it should."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from longtail.core.config import EncodeConfig, ProfileConfig
from longtail.encode.factory import build_encoder
from longtail.encode.item_text import item_texts
from longtail.privacy.dp import category_domain
from longtail.profile.profiles import (
    Moment,
    ProfileItem,
    UserProfile,
    activity,
    build_profile,
    dp_category_shares,
    interest_vector,
    long_term_vector,
    profile_items,
    session_vector,
    summarise,
    update,
)
from longtail.serve.events import StoredEvent

USER = "A3L1VJMHFWONCB"  # the most active demo user: 51 reviews of 51 items
# A shopping day per reviewed item: a search, then views, a click, a cart and a purchase, minutes apart.
PATTERN = (("search", 0), ("view", 2), ("click", 5), ("add_to_cart", 9), ("view", 50), ("purchase", 52))


@pytest.fixture(scope="module")
def demo(demo_data: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_csv(demo_data / "items.csv", schema_overrides={"price": pl.Float64}), pl.read_parquet(demo_data / "events.parquet")


@pytest.fixture(scope="module")
def user_events(demo: tuple[pl.DataFrame, pl.DataFrame]) -> pl.DataFrame:
    """The user's real items in their real order, each visited in a pattern of event types and gaps."""
    reviews = demo[1].filter(pl.col("user_id") == USER).sort("timestamp")
    rows = []
    for day, (item_id, start) in enumerate(zip(reviews["item_id"], reviews["timestamp"], strict=True)):
        for kind, minutes in PATTERN[: 2 + day % 5]:
            rows.append({"item_id": None if kind == "search" else item_id, "event_type": kind, "timestamp": start + timedelta(minutes=minutes)})
    return pl.DataFrame(rows, schema={"item_id": pl.String, "event_type": pl.String, "timestamp": pl.Datetime("us", "UTC")})


@pytest.fixture(scope="module")
def items(demo: tuple[pl.DataFrame, pl.DataFrame], user_events: pl.DataFrame) -> dict[str, ProfileItem]:
    touched = demo[0].filter(pl.col("item_id").is_in(user_events["item_id"].drop_nulls().unique().implode()))
    return profile_items(touched, build_encoder(EncodeConfig(encoder="minilm-int8", cache_dir=None)).encode(item_texts(touched)))


def fold(events: pl.DataFrame, items: dict[str, ProfileItem], config: ProfileConfig) -> UserProfile:
    profile = UserProfile(USER)
    for row in events.iter_rows(named=True):
        event = StoredEvent(USER, row["item_id"], row["event_type"], row["timestamp"])
        profile = update(profile, event, items.get(row["item_id"]) if row["item_id"] else None, config)
    return profile


def test_folding_events_one_by_one_equals_building_from_all_of_them(user_events: pl.DataFrame, items: dict[str, ProfileItem]) -> None:
    config = ProfileConfig(half_life_days=7, session_gap_minutes=30, intent_window_days=3)
    batch = build_profile(USER, user_events, items, config)
    online = fold(user_events, items, config)
    assert online.events == batch.events == user_events.height
    assert (online.last_seen, online.session_start, online.session_events) == (batch.last_seen, batch.session_start, batch.session_events)
    assert online.session == batch.session and online.recent == batch.recent
    assert online.event_types == batch.event_types and online.active_days == batch.active_days
    np.testing.assert_allclose(online.interest_sum, batch.interest_sum, rtol=1e-9)
    np.testing.assert_allclose(online.session_sum, batch.session_sum, rtol=1e-9)
    assert online.interest_weight == pytest.approx(batch.interest_weight, rel=1e-9)
    assert set(online.touches) == set(batch.touches)
    for item_id, touch in batch.touches.items():
        assert online.touches[item_id].weight == pytest.approx(touch.weight, rel=1e-9, abs=1e-300)
        assert online.touches[item_id].events == touch.events
    np.testing.assert_allclose(interest_vector(online, 0.5), interest_vector(batch, 0.5), atol=1e-6)
    one, other = summarise(online, config), summarise(batch, config)
    assert [a.name for a in one.categories] == [a.name for a in other.categories]
    assert [c.item_id for c in one.long_term_items] == [c.item_id for c in other.long_term_items]
    assert one.intent == other.intent and one.activity == other.activity


def test_each_part_of_the_profile_is_what_its_definition_says(user_events: pl.DataFrame, items: dict[str, ProfileItem]) -> None:
    config = ProfileConfig(half_life_days=7, session_gap_minutes=30, intent_window_days=3)
    profile = build_profile(USER, user_events, items, config)
    last_day = user_events.filter(pl.col("timestamp") >= profile.session_start)
    # The last visit is one item's pattern, minutes apart; the day before is more than the gap away.
    assert last_day.height == profile.session_events and last_day["item_id"].drop_nulls().n_unique() == 1
    only = last_day["item_id"].drop_nulls()[0]
    np.testing.assert_allclose(session_vector(profile), items[only].vector, atol=1e-6)
    # Long-term: each event weighs its type weight halved every 7 days before the last event.
    last = user_events.filter(pl.col("item_id") == only)
    ages = (profile.last_seen - last["timestamp"]).dt.total_seconds().to_numpy() / 86_400  # type: ignore[operator]
    expected = sum(config.event_weights[kind] * 0.5 ** (age / 7) for kind, age in zip(last["event_type"], ages, strict=True))
    assert profile.touches[only].weight == pytest.approx(expected)
    vectors = np.stack([items[i].vector for i in profile.touches])
    weights = np.array([t.weight for t in profile.touches.values()])
    mean = (weights[:, None] * vectors).sum(axis=0)
    np.testing.assert_allclose(long_term_vector(profile), mean / np.linalg.norm(mean), atol=1e-6)
    summary = summarise(profile, config)
    heaviest = int(np.argmax(weights))
    assert summary.long_term_items[0].item_id == list(profile.touches)[heaviest]
    assert summary.long_term_items[0].share == pytest.approx(weights[heaviest] / weights.sum(), abs=1e-6)
    # Intent: event types within 3 days of the last event.
    window = user_events.filter(pl.col("timestamp") > profile.last_seen - timedelta(days=3))
    counts = window["event_type"].value_counts()
    assert summary.intent == {kind: pytest.approx(n / window.height, abs=1e-6) for kind, n in counts.iter_rows()}
    assert summary.activity.events_per_active_day == pytest.approx(user_events.height / user_events["timestamp"].dt.date().n_unique(), abs=1e-4)
    assert summary.activity.level == activity(profile, config).level == "regular"  # 2-6 events a day
    top = summary.categories[0]
    assert top.items and all(items[c.item_id].category == top.name for c in top.items)
    assert summary.price_band is None  # the demo catalogue has no prices


def test_price_band_and_activity_levels_follow_the_config() -> None:
    config = ProfileConfig(activity_thresholds=[1.5, 3.0, 10.0])
    start = datetime(2024, 5, 1, 9, tzinfo=UTC)
    catalogue = {f"i{n}": ProfileItem(f"i{n}", None, "Tools", "Acme", price) for n, price in enumerate([4.0, 10.0, 12.0, 30.0, None])}
    profile = UserProfile("u")
    for n in range(5):
        profile = update(profile, StoredEvent("u", f"i{n}", "view", start + timedelta(minutes=n)), catalogue[f"i{n}"], config)
    summary = summarise(profile, config)
    assert summary.price_band is not None and summary.price_band.items == 4
    assert (summary.price_band.low, summary.price_band.median, summary.price_band.high) == pytest.approx(tuple(np.quantile([4, 10, 12, 30], [0.25, 0.5, 0.75])))
    assert summary.activity.level == "frequent" and summary.activity.events_per_active_day == 5.0
    assert summary.session == [Moment(f"i{n}", "view", start + timedelta(minutes=n)) for n in range(5)]
    assert summary.long_term_items == [] and interest_vector(profile, 0.5) is None  # no vectors: nothing to point anywhere


def test_dp_affinities_cost_less_accuracy_as_epsilon_grows(demo: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    catalogue, events = demo
    lookup = profile_items(catalogue)
    domain = category_domain(catalogue)
    at = events["timestamp"].max()
    active = events.group_by("user_id").len().sort(["len", "user_id"], descending=[True, False]).head(200)["user_id"]
    errors: dict[float, list[float]] = {0.5: [], 2.0: [], 8.0: []}
    agree: dict[float, list[bool]] = {epsilon: [] for epsilon in errors}
    for n, user in enumerate(active):
        profile = build_profile(user, events.filter(pl.col("user_id") == user), lookup)
        weights = {a.name: a.affinity for a in summarise(profile, ProfileConfig(top=len(domain))).categories}
        exact = np.array([weights.get(name, 0.0) for name in domain])
        for epsilon in errors:
            released = dp_category_shares(profile, domain, epsilon, at, seed=n)  # type: ignore[arg-type]
            noisy = np.array([released[name] for name in domain])
            assert noisy.sum() == pytest.approx(1.0)
            errors[epsilon].append(float(np.abs(noisy - exact).sum()))
            agree[epsilon].append(domain[int(np.argmax(noisy))] == domain[int(np.argmax(exact))])
    mean_error = {epsilon: float(np.mean(values)) for epsilon, values in errors.items()}
    top_agreement = {epsilon: float(np.mean(values)) for epsilon, values in agree.items()}
    assert mean_error[0.5] > mean_error[2.0] > mean_error[8.0]
    assert top_agreement[8.0] > top_agreement[0.5]
