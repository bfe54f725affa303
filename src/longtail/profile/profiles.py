"""User profiles: decayed long-term and session interest vectors, affinities, price band, activity and intent, foldable one event at a time."""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TypedDict

import numpy as np
import polars as pl

from longtail.core.config import ACTIVITY_LEVELS, ProfileConfig
from longtail.data.schema import Event
from longtail.privacy.dp import laplace_mechanism, laplace_scale, normalise_affinities

SECONDS_PER_DAY = 86_400.0
PRICE_QUANTILES = (0.25, 0.5, 0.75)


@dataclass(frozen=True)
class ProfileItem:
    """What a profile needs to know about an item: its L2-normalised text vector (None: not encoded) and its facets."""

    item_id: str
    vector: np.ndarray | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None


@dataclass(frozen=True)
class Touch:
    """One item in a user's history: its decayed interest weight at the profile's last-seen time, and what it is."""

    weight: float
    events: int
    has_vector: bool
    category: str | None = None
    brand: str | None = None
    price: float | None = None


@dataclass(frozen=True)
class Moment:
    """One event as a profile remembers it, for the session and the intent window."""

    item_id: str | None
    event_type: str
    timestamp: datetime


class _SessionFields(TypedDict, total=False):
    """The UserProfile fields one event can change about the current session."""

    session_start: datetime
    session_events: int
    session: tuple[Moment, ...]
    session_sum: np.ndarray | None
    session_weight: float


@dataclass(frozen=True)
class UserProfile:
    """Everything a profile is derived from; decayed weights and sums are expressed at `last_seen`."""

    user_id: str
    last_seen: datetime | None = None
    events: int = 0
    event_types: Mapping[str, int] = field(default_factory=dict)
    active_days: frozenset[date] = frozenset()
    touches: Mapping[str, Touch] = field(default_factory=dict)
    interest_sum: np.ndarray | None = None
    interest_weight: float = 0.0
    session_start: datetime | None = None
    session_events: int = 0
    session: tuple[Moment, ...] = ()  # the session's latest events (at most max_recent_events), oldest first
    session_sum: np.ndarray | None = None
    session_weight: float = 0.0
    recent: tuple[Moment, ...] = ()  # events inside the intent window, oldest first


def profile_items(items: pl.DataFrame, vectors: np.ndarray | None = None) -> dict[str, ProfileItem]:
    """ProfileItems by id from a canonical items table and, optionally, its text vectors (row i = item i)."""
    columns = {name: items[name].to_list() if name in items.columns else [None] * items.height for name in ("item_id", "category", "brand", "price")}
    return {
        item_id: ProfileItem(item_id, None if vectors is None else vectors[row], category, brand, None if price is None else float(price))
        for row, (item_id, category, brand, price) in enumerate(zip(*columns.values(), strict=True))
    }


def _decay(seconds: float, config: ProfileConfig) -> float:
    return float(2.0 ** (-seconds / (config.half_life_days * SECONDS_PER_DAY)))


def _add_vector(total: np.ndarray | None, weight: float, vector: np.ndarray) -> np.ndarray:
    scaled = weight * vector.astype(np.float64)
    return scaled if total is None else total + scaled


def _insert(moments: tuple[Moment, ...], moment: Moment) -> tuple[Moment, ...]:
    """Keep moments in time order; an event arriving late slots in after those at the same time."""
    if not moments or moment.timestamp >= moments[-1].timestamp:
        return (*moments, moment)
    position = bisect.bisect_right([m.timestamp for m in moments], moment.timestamp)
    return (*moments[:position], moment, *moments[position:])


def _window(moments: tuple[Moment, ...], last_seen: datetime, config: ProfileConfig) -> tuple[Moment, ...]:
    start = last_seen - timedelta(days=config.intent_window_days)
    return tuple(m for m in moments if m.timestamp > start)[-config.max_recent_events :]


def update(profile: UserProfile, event: Event, item: ProfileItem | None, config: ProfileConfig | None = None) -> UserProfile:
    """The profile with one more event folded in; `item` is the event's item (None for a search or an unknown item)."""
    config = config or ProfileConfig()
    moment = Moment(event.item_id, event.event_type, event.timestamp)
    base = config.event_weights.get(event.event_type, 0.0)
    previous = profile.last_seen
    if previous is None or moment.timestamp >= previous:
        # Everything known so far ages by the time since the last event; the new event enters at full weight.
        shift = 1.0 if previous is None else _decay((moment.timestamp - previous).total_seconds(), config)
        last_seen, weight = moment.timestamp, base
    else:
        shift, last_seen = 1.0, previous
        weight = base * _decay((previous - moment.timestamp).total_seconds(), config)
    vector = item.vector if item is not None else None
    touches = {item_id: replace(touch, weight=touch.weight * shift) for item_id, touch in profile.touches.items()}
    interest_sum = None if profile.interest_sum is None else profile.interest_sum * shift
    interest_weight = profile.interest_weight * shift
    if event.item_id is not None:
        known = touches.get(event.item_id)
        touches[event.item_id] = Touch(
            weight=(known.weight if known else 0.0) + weight,
            events=(known.events if known else 0) + 1,
            has_vector=vector is not None,
            category=item.category if item else None,
            brand=item.brand if item else None,
            price=item.price if item else None,
        )
    if vector is not None:
        interest_sum = _add_vector(interest_sum, weight, vector)
        interest_weight += weight
    session_fields = _fold_session(profile, moment, base, vector, config)
    event_types = dict(profile.event_types)
    event_types[event.event_type] = event_types.get(event.event_type, 0) + 1
    return replace(
        profile,
        last_seen=last_seen,
        events=profile.events + 1,
        event_types=event_types,
        active_days=profile.active_days | {moment.timestamp.date()},
        touches=touches,
        interest_sum=interest_sum,
        interest_weight=interest_weight,
        recent=_window(_insert(profile.recent, moment), last_seen, config),
        **session_fields,
    )


def _fold_session(profile: UserProfile, moment: Moment, weight: float, vector: np.ndarray | None, config: ProfileConfig) -> _SessionFields:
    """The session fields after one event: a pause longer than the gap starts a new session; events within it join it."""
    gap = timedelta(minutes=config.session_gap_minutes)
    if profile.last_seen is None or moment.timestamp - profile.last_seen > gap:
        return {
            "session_start": moment.timestamp,
            "session_events": 1,
            "session": (moment,),
            "session_sum": None if vector is None else _add_vector(None, weight, vector),
            "session_weight": weight if vector is not None else 0.0,
        }
    if profile.session_start is not None and moment.timestamp >= profile.session_start:
        return {
            "session_events": profile.session_events + 1,
            "session": _insert(profile.session, moment)[-config.max_recent_events :],
            "session_sum": profile.session_sum if vector is None else _add_vector(profile.session_sum, weight, vector),
            "session_weight": profile.session_weight + (weight if vector is not None else 0.0),
        }
    return {}  # an event from before the current session belongs to an older one


def build_profile(user_id: str, events: pl.DataFrame, items: Mapping[str, ProfileItem], config: ProfileConfig | None = None) -> UserProfile:
    """A user's profile from all their events at once (columns item_id, event_type, timestamp), vectorised."""
    config = config or ProfileConfig()
    frame = events.select("item_id", "event_type", "timestamp").sort("timestamp", maintain_order=True)
    if frame.height == 0:
        return UserProfile(user_id)
    times: list[datetime] = frame["timestamp"].to_list()
    last_seen = times[-1]
    ages = frame.select((pl.lit(last_seen) - pl.col("timestamp")).dt.total_microseconds()).to_series().to_numpy() / 1e6
    base = frame["event_type"].replace_strict(config.event_weights, default=0.0, return_dtype=pl.Float64).to_numpy()
    weighted = frame.with_columns(pl.Series("base", base), pl.Series("weight", base * 2.0 ** (-ages / (config.half_life_days * SECONDS_PER_DAY))))
    per_item = weighted.filter(pl.col("item_id").is_not_null()).group_by("item_id", maintain_order=True).agg(pl.col("weight").sum(), pl.len().alias("events"))
    touches: dict[str, Touch] = {}
    interest_sum, interest_weight = None, 0.0
    for item_id, weight, count in per_item.iter_rows():
        item = items.get(item_id)
        vector = item.vector if item is not None else None
        touches[item_id] = Touch(weight, int(count), vector is not None, *((item.category, item.brand, item.price) if item else (None, None, None)))
        if vector is not None:
            interest_sum = _add_vector(interest_sum, weight, vector)
            interest_weight += weight
    moments = tuple(Moment(*row) for row in frame.iter_rows())
    start = _session_start(times, config)
    session_sum, session_weight = None, 0.0
    for moment, weight in zip(moments[start:], base[start:].tolist(), strict=True):
        item = items.get(moment.item_id) if moment.item_id is not None else None
        if item is not None and item.vector is not None:
            session_sum = _add_vector(session_sum, weight, item.vector)
            session_weight += weight
    return UserProfile(
        user_id=user_id,
        last_seen=last_seen,
        events=frame.height,
        event_types=dict(frame.group_by("event_type", maintain_order=True).len().iter_rows()),
        active_days=frozenset(moment.date() for moment in times),
        touches=touches,
        interest_sum=interest_sum,
        interest_weight=interest_weight,
        session_start=times[start],
        session_events=frame.height - start,
        session=moments[start:][-config.max_recent_events :],
        session_sum=session_sum,
        session_weight=session_weight,
        recent=_window(moments, last_seen, config),
    )


def _session_start(times: list[datetime], config: ProfileConfig) -> int:
    """Index of the first event after the last pause longer than the session gap."""
    gap = timedelta(minutes=config.session_gap_minutes)
    for index in range(len(times) - 1, 0, -1):
        if times[index] - times[index - 1] > gap:
            return index
    return 0


# -- what a profile says -------------------------------------------------------------------------


def _unit(total: np.ndarray | None) -> np.ndarray | None:
    if total is None:
        return None
    norm = float(np.linalg.norm(total))
    return (total / norm).astype(np.float32) if norm > 0 else None


def long_term_vector(profile: UserProfile) -> np.ndarray | None:
    """The direction of the decayed weighted mean of the user's item vectors (unit length)."""
    return _unit(profile.interest_sum)


def session_vector(profile: UserProfile) -> np.ndarray | None:
    """The direction of the weighted mean of the current session's item vectors (unit length)."""
    return _unit(profile.session_sum)


def interest_vector(profile: UserProfile, short_term_weight: float) -> np.ndarray | None:
    """Session and long-term vectors blended (unit length); either alone when the other is missing."""
    long_term, session = long_term_vector(profile), session_vector(profile)
    if long_term is None or session is None:
        return session if long_term is None else long_term
    return _unit(short_term_weight * session.astype(np.float64) + (1 - short_term_weight) * long_term.astype(np.float64))


@dataclass(frozen=True)
class Contribution:
    """An item behind part of a profile, with its share of that part's weight."""

    item_id: str
    share: float


@dataclass(frozen=True)
class Affinity:
    """A category or brand, the user's decayed share of interest in it, and the items behind it."""

    name: str
    affinity: float
    items: list[Contribution]


@dataclass(frozen=True)
class PriceBand:
    """Quartiles of the prices of the items a user touched, and how many priced items they come from."""

    low: float
    median: float
    high: float
    items: int


@dataclass(frozen=True)
class Activity:
    """Events per active day, bucketed into a level."""

    level: str
    events_per_active_day: float
    active_days: int


@dataclass(frozen=True)
class ProfileSummary:
    """A profile as people and clients read it: every part with the items or events behind it."""

    user_id: str
    events: int
    last_seen: datetime | None
    event_types: dict[str, int]
    long_term_items: list[Contribution]
    session_start: datetime | None
    session_events: int
    session: list[Moment]
    session_items: list[Contribution]
    categories: list[Affinity]
    brands: list[Affinity]
    price_band: PriceBand | None
    activity: Activity
    intent: dict[str, float]
    intent_events: list[Moment]
    dp_epsilon: float | None = None  # set when the category affinities are a differentially private release


def _shares(weights: Mapping[str, float], top: int) -> list[Contribution]:
    total = sum(weights.values())
    if total <= 0:
        return []
    ranked = sorted(weights.items(), key=lambda pair: (-pair[1], pair[0]))[:top]
    return [Contribution(name, round(weight / total, 6)) for name, weight in ranked]


def long_term_items(profile: UserProfile, top: int) -> list[Contribution]:
    """The items that weigh most in the long-term vector, with their share of its weight."""
    return _shares({item_id: t.weight for item_id, t in profile.touches.items() if t.has_vector}, top)


def session_items(profile: UserProfile, config: ProfileConfig) -> list[Contribution]:
    """The session's items by their share of the session vector's weight."""
    weights: dict[str, float] = {}
    for moment in profile.session:
        item_id = moment.item_id
        touch = profile.touches.get(item_id) if item_id is not None else None
        if item_id is not None and touch is not None and touch.has_vector:
            weights[item_id] = weights.get(item_id, 0.0) + config.event_weights.get(moment.event_type, 0.0)
    return _shares(weights, config.explain_items)


def affinity_weights(profile: UserProfile, facet: str) -> dict[str, float]:
    """Decayed interest weight per category (facet='category') or brand (facet='brand')."""
    weights: dict[str, float] = {}
    for touch in profile.touches.values():
        name = getattr(touch, facet)
        if name:
            weights[name] = weights.get(name, 0.0) + touch.weight
    return weights


def affinities(profile: UserProfile, facet: str, config: ProfileConfig, shares: Mapping[str, float] | None = None) -> list[Affinity]:
    """Top categories or brands by decayed share (or by released `shares`), each with the items behind it."""
    weights = affinity_weights(profile, facet)
    total = sum(weights.values())
    if shares is None:
        shares = {name: weight / total for name, weight in weights.items()} if total > 0 else {}
    ranked = sorted(((name, share) for name, share in shares.items() if share > 0), key=lambda pair: (-pair[1], pair[0]))[: config.top]
    result = []
    for name, share in ranked:
        behind = {item_id: t.weight for item_id, t in profile.touches.items() if getattr(t, facet) == name}
        result.append(Affinity(name, round(share, 6), _shares(behind, config.explain_items)))
    return result


def price_band(profile: UserProfile) -> PriceBand | None:
    """Price quartiles over the distinct items touched that have a price; None when none has."""
    prices = np.array([t.price for t in profile.touches.values() if t.price is not None], dtype=np.float64)
    if prices.size == 0:
        return None
    low, median, high = (float(value) for value in np.quantile(prices, PRICE_QUANTILES))
    return PriceBand(round(low, 4), round(median, 4), round(high, 4), int(prices.size))


def activity(profile: UserProfile, config: ProfileConfig) -> Activity:
    """Events per active day and its level (occasional, regular, frequent, heavy)."""
    days = len(profile.active_days)
    rate = profile.events / days if days else 0.0
    level = ACTIVITY_LEVELS[int(np.searchsorted(np.asarray(config.activity_thresholds), rate, side="right"))]
    return Activity(level, round(rate, 4), days)


def intent(profile: UserProfile) -> dict[str, float]:
    """Shares of event types among the events in the intent window."""
    counts: dict[str, int] = {}
    for moment in profile.recent:
        counts[moment.event_type] = counts.get(moment.event_type, 0) + 1
    total = sum(counts.values())
    return {kind: round(count / total, 6) for kind, count in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))} if total else {}


def summarise(
    profile: UserProfile, config: ProfileConfig | None = None, category_shares: Mapping[str, float] | None = None, dp_epsilon: float | None = None
) -> ProfileSummary:
    """Every part of a profile with what is behind it; `category_shares` replaces the exact ones (a DP release)."""
    config = config or ProfileConfig()
    return ProfileSummary(
        user_id=profile.user_id,
        events=profile.events,
        last_seen=profile.last_seen,
        event_types=dict(profile.event_types),
        long_term_items=long_term_items(profile, config.explain_items),
        session_start=profile.session_start,
        session_events=profile.session_events,
        session=list(profile.session[-config.explain_items :]),
        session_items=session_items(profile, config),
        categories=affinities(profile, "category", config, category_shares),
        brands=affinities(profile, "brand", config),
        price_band=price_band(profile),
        activity=activity(profile, config),
        intent=intent(profile),
        intent_events=list(profile.recent[-config.explain_items :]),
        dp_epsilon=dp_epsilon,
    )


def dp_category_shares(
    profile: UserProfile, domain: list[str], epsilon: float, at: datetime, seed: int, config: ProfileConfig | None = None
) -> dict[str, float]:
    """Category affinities released with event-level ε-DP over a public category domain.

    Weights are taken at a public time `at` (not at the user's own last-seen time), so one event more or less
    changes one category's weight by at most the largest event weight: that is the L1 sensitivity of the release."""
    config = config or ProfileConfig()
    if profile.last_seen is not None and at < profile.last_seen:
        raise ValueError("release time `at` must not be before the user's last event")
    sensitivity = max(max(config.event_weights.values(), default=0.0), 1e-12)
    shift = 1.0 if profile.last_seen is None else _decay((at - profile.last_seen).total_seconds(), config)
    weights = affinity_weights(profile, "category")
    exact = np.array([weights.get(name, 0.0) * shift for name in domain], dtype=np.float64)
    noisy = laplace_mechanism(exact, sensitivity, epsilon, np.random.default_rng(seed))
    # As in dp.dp_affinities: noise below b*ln(categories) is mostly noise on empty categories, so it does not count.
    cut = laplace_scale(sensitivity, epsilon) * np.log(max(len(domain), 1))
    shares = normalise_affinities(noisy[None, :], cut)[0]
    return {name: float(share) for name, share in zip(domain, shares, strict=True)}
