"""Posted events: the request model and the checks against the canonical events schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from longtail.core.config import QualityConfig
from longtail.data.schema import EVENT_TYPES
from longtail.core.errors import EventValidationError
from longtail.serve.text import Identifier, LongText, NonEmptyText

EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]  # the one list of event types lives in data/schema.py
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class EventIn(BaseModel):
    """One behaviour event as a client posts it; fields are those of the canonical events table."""

    model_config = ConfigDict(extra="forbid")

    user_id: Identifier
    item_id: Identifier | None = Field(None, description="required except for search events")
    event_type: EventType
    timestamp: datetime | None = Field(None, description="ISO 8601; no offset means UTC; omitted means the time it is received")
    session_id: Identifier | None = None
    query: NonEmptyText | None = Field(None, description="required for search events")
    rating: float | None = Field(None, description="1-5; required for rating events", allow_inf_nan=False)
    text: LongText | None = Field(None, description="review text")

    @model_validator(mode="after")
    def _fields_of_its_type(self) -> EventIn:
        if self.event_type == "search" and not self.query:
            raise ValueError("a search event needs a non-empty query")
        if self.event_type != "search" and self.item_id is None:
            raise ValueError(f"a {self.event_type} event needs an item_id")
        if self.event_type == "rating" and self.rating is None:
            raise ValueError("a rating event needs a rating")
        return self


class EventBatch(BaseModel):
    """A batch of events written all together or not at all."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, description="one or more events")


@dataclass(frozen=True)
class StoredEvent:
    """An event as the store holds it: every canonical column, a UTC timestamp, and its id once written."""

    user_id: str
    item_id: str | None
    event_type: str
    timestamp: datetime
    session_id: str | None = None
    query: str | None = None
    rating: float | None = None
    text: str | None = None
    id: int | None = None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def validate_events(batch: list[EventIn], quality: QualityConfig, now: datetime | None = None) -> list[StoredEvent]:
    """Check ranges and times that depend on the config; raise naming every bad event, else return storable events."""
    now = now or datetime.now(UTC)
    latest = now + timedelta(seconds=quality.future_tolerance_seconds)
    earliest = _utc(datetime.fromisoformat(quality.catalogue_start)) if quality.catalogue_start else EPOCH
    problems, stored = [], []
    for index, event in enumerate(batch):
        moment = _utc(event.timestamp) if event.timestamp is not None else now
        if moment > latest:
            problems.append(f"events[{index}].timestamp {moment.isoformat()} is in the future")
        if moment < earliest:
            problems.append(f"events[{index}].timestamp {moment.isoformat()} is before {earliest.date().isoformat()}")
        if event.rating is not None and not quality.min_rating <= event.rating <= quality.max_rating:
            problems.append(f"events[{index}].rating {event.rating} is outside {quality.min_rating:g}-{quality.max_rating:g}")
        stored.append(StoredEvent(**event.model_dump(exclude={"timestamp"}), timestamp=moment))
    if problems:
        raise EventValidationError("; ".join(problems))
    return stored
