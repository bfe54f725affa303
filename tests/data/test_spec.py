"""The data spec is the one declaration of item and event fields: tables, API models and stored events follow it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
import pytest
from pydantic import ValidationError

from longtail.data.schema import EVENT_RULES, EVENTS, ITEMS, Event, column, missing_fields, table_spec
from longtail.serve.events import EventIn, StoredEvent
from longtail.serve.schemas import EventOut, ItemIn, spec_model


def test_tables_follow_the_spec() -> None:
    assert EVENTS.required == ("user_id", "item_id", "event_type", "timestamp")
    assert EVENTS.not_null == ("user_id", "event_type", "timestamp")
    assert EVENTS.columns["rating"] == pl.Float64() and EVENTS.columns["timestamp"] == pl.Datetime("us", "UTC")
    assert ITEMS.required == ("item_id", "title") and ITEMS.columns["attributes"] == pl.String()


def test_api_models_carry_the_spec_fields() -> None:
    assert list(EventIn.model_fields) == EVENTS.column_names
    assert list(ItemIn.model_fields) == ITEMS.column_names
    assert list(EventOut.model_fields) == ["id", "item_id", "event_type", "timestamp", "session_id", "query", "rating"]
    assert {n for n, f in EventIn.model_fields.items() if f.is_required()} == {"user_id", "event_type"}
    assert {n for n, f in EventOut.model_fields.items() if f.is_required()} == {"id", "item_id", "event_type", "timestamp"}


def test_spec_limits_apply_to_posted_fields() -> None:
    with pytest.raises(ValidationError, match="at most 128 characters"):
        EventIn(user_id="u" * 129, item_id="i", event_type="view")
    with pytest.raises(ValidationError, match="NUL"):
        EventIn(user_id="u\x00", item_id="i", event_type="view")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ItemIn(item_id="i", title="t", price=-1)
    with pytest.raises(ValidationError, match="should match pattern"):
        ItemIn(item_id="i", title="t", currency="euro")


def test_a_field_added_to_the_spec_shows_up_in_the_api_model() -> None:
    @dataclass(frozen=True)
    class TaggedEvent(Event):
        tag: str | None = column(default=True, limits={"max_length": 3}, description="a short label")

    posted = spec_model("TaggedEventIn", TaggedEvent, "an event with a tag", posted=True)
    assert posted(user_id="u", item_id="i", event_type="view", tag="abc").tag == "abc"  # type: ignore[attr-defined]
    assert posted.model_fields["tag"].description == "a short label"
    with pytest.raises(ValidationError):
        posted(user_id="u", item_id="i", event_type="view", tag="abcd")
    assert table_spec("tagged", TaggedEvent, key=()).columns["tag"] == pl.String()


def test_stored_events_are_spec_events_with_an_id() -> None:
    moment = datetime(2025, 1, 1, tzinfo=UTC)
    stored = StoredEvent("u", "i", "view", moment, id=7)
    assert isinstance(stored, Event) and stored.id == 7 and stored.text is None


def test_event_rules_name_what_each_type_lacks() -> None:
    assert missing_fields("search", {"query": "  "}) == ["a non-empty query"]
    assert missing_fields("rating", {"item_id": None, "rating": None}) == ["an item_id", "a rating"]
    assert missing_fields("view", {"item_id": "i"}) == []
    assert [rule.field for rule in EVENT_RULES if rule.applies("search")] == ["query"]
    with pytest.raises(ValidationError, match="a rating event needs a rating"):
        EventIn(user_id="u", item_id="i", event_type="rating")
