"""Posted events are checked against the canonical events schema before anything is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from longtail.core.config import QualityConfig
from longtail.core.errors import EventValidationError
from longtail.data.schema import EVENT_TYPES, EVENTS
from longtail.serve.events import EventIn, StoredEvent, validate_events

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_stored_events_carry_every_canonical_column() -> None:
    assert set(EVENTS.column_names) <= set(StoredEvent.__dataclass_fields__)


def test_event_types_are_the_canonical_ones() -> None:
    for kind in EVENT_TYPES:
        fields = {"query": "q"} if kind == "search" else {"item_id": "i", "rating": 3}
        assert EventIn(user_id="u", event_type=kind, **fields).event_type == kind
    with pytest.raises(ValidationError):
        EventIn(user_id="u", item_id="i", event_type="like")


def test_naive_times_are_utc_and_missing_times_are_now() -> None:
    events = [EventIn(user_id="u", item_id="i", event_type="view", timestamp=datetime(2024, 1, 1, 8)), EventIn(user_id="u", item_id="i", event_type="view")]
    stored = validate_events(events, QualityConfig(), now=NOW)
    assert [e.timestamp for e in stored] == [datetime(2024, 1, 1, 8, tzinfo=UTC), NOW]


def test_every_bad_event_is_named() -> None:
    events = [
        EventIn(user_id="u", item_id="i", event_type="view"),
        EventIn(user_id="u", item_id="i", event_type="rating", rating=9),
        EventIn(user_id="u", item_id="i", event_type="view", timestamp=NOW + timedelta(days=2)),
    ]
    with pytest.raises(EventValidationError) as error:
        validate_events(events, QualityConfig(), now=NOW)
    assert "events[1].rating 9.0 is outside 1-5" in str(error.value)
    assert "events[2].timestamp" in str(error.value) and "events[0]" not in str(error.value)


def test_catalogue_start_and_rating_range_come_from_the_config() -> None:
    quality = QualityConfig(catalogue_start="2020-01-01", min_rating=0, max_rating=10)
    assert validate_events([EventIn(user_id="u", item_id="i", event_type="rating", rating=9)], quality, now=NOW)
    with pytest.raises(EventValidationError, match="before 2020-01-01"):
        validate_events([EventIn(user_id="u", item_id="i", event_type="view", timestamp=datetime(2019, 1, 1))], quality, now=NOW)
