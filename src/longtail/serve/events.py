"""Posted events: the request model and the checks against the canonical events schema."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from longtail.core.config import QualityConfig
from longtail.core.errors import ConfigError, EventValidationError
from longtail.data.schema import EVENT_RULES, Event, missing_fields
from longtail.serve.schemas import EventOut, attributes_storable, spec_model

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _fields_of_its_type(event: Any) -> Any:
    """Refuse an event lacking a field its type needs, by the rules the audit applies too."""
    missing = missing_fields(event.event_type, {rule.field: getattr(event, rule.field) for rule in EVENT_RULES})
    if missing:
        raise ValueError(f"a {event.event_type} event needs {missing[0]}")
    return event


if TYPE_CHECKING:
    EventIn: TypeAlias = Any  # a class spec_model builds at import time, opaque to mypy
else:
    EventIn = spec_model(
        "EventIn",
        Event,
        "One behaviour event as a client posts it; fields are those of the canonical events table.",
        posted=True,
        validators={
            "_fields_of_its_type": model_validator(mode="after")(_fields_of_its_type),
            "_attributes_storable": field_validator("attributes")(attributes_storable),
        },
    )


class EventBatch(BaseModel):
    """A batch of events written all together or not at all."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, description="one or more events")


@dataclass(frozen=True)
class StoredEvent(Event):
    """An event as the store holds it: every canonical column, a UTC timestamp, and its id once written."""

    id: int | None = None


def returned_event(event: StoredEvent) -> EventOut:
    """A stored event as the API returns it: the fields EventOut declares (id 0 before it is written)."""
    return EventOut(**{name: getattr(event, name) for name in EventOut.model_fields if name != "id"}, id=event.id or 0)


def _utc(moment: datetime) -> datetime | None:
    """The moment in UTC (naive means UTC already); None when UTC falls outside the years 1-9999 datetime can hold."""
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        return None


def validate_events(batch: list[EventIn], quality: QualityConfig, now: datetime | None = None) -> list[StoredEvent]:
    """Check ranges and times that depend on the config; raise naming every bad event, else return storable events."""
    now = now or datetime.now(UTC)
    latest = now + timedelta(seconds=quality.future_tolerance_seconds)
    earliest = _utc(datetime.fromisoformat(quality.catalogue_start)) if quality.catalogue_start else EPOCH
    if earliest is None:
        raise ConfigError(f"quality.catalogue_start {quality.catalogue_start!r} is outside the years 1-9999 in UTC")
    problems, stored = [], []
    for index, event in enumerate(batch):
        moment = _utc(event.timestamp) if event.timestamp is not None else now
        if moment is None:
            # e.g. 9999-12-31T23:00:00-05:00: a valid local time whose UTC instant lies past year 9999.
            problems.append(f"events[{index}].timestamp {event.timestamp.isoformat()} is outside the years 1-9999 in UTC")
            continue
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
