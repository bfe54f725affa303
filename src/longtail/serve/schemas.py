"""Request and response models of the API; they are its documentation in the served OpenAPI spec."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from longtail.data.schema import Event, FieldSpec, Item, spec_fields
from longtail.search.recovery import Step
from longtail.serve.text import Identifier, NonEmptyText, ShortText, storable_text


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _posted(spec: FieldSpec) -> tuple[Any, Any]:
    """Annotation and default of a field a client sends: the spec's limits, choices and descriptions apply."""
    if spec.choices:
        annotation: Any = Literal[spec.choices]
    elif spec.python_type is str:
        annotation = storable_text(spec.limits)
    else:
        annotation = dict[str, Any] if spec.python_type is dict else spec.python_type
    numeric = {} if spec.python_type is str else spec.limits
    optional = spec.nullable or spec.omittable
    return annotation | None if optional else annotation, Field(None if optional else ..., description=spec.description or None, **numeric)


def _returned(spec: FieldSpec) -> tuple[Any, Any]:
    """Annotation and default of a field the API returns: null where the spec allows it, absent where a file may lack it."""
    annotation = dict[str, Any] if spec.python_type is dict else spec.python_type
    return annotation | None if spec.nullable else annotation, ... if spec.required else None


def spec_model(
    name: str,
    spec: type,
    doc: str,
    *,
    posted: bool,
    include: Collection[str] | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    validators: dict[str, Any] | None = None,
) -> type[BaseModel]:
    """An API model whose fields come from a data spec (`Item`, `Event`): `include` picks and orders them,
    `before`/`after` add API-only fields (name -> annotation or (annotation, default)) around them."""
    chosen = {field.name: field for field in spec_fields(spec)}
    names = list(chosen) if include is None else list(include)
    fields = {**(before or {}), **{n: (_posted if posted else _returned)(chosen[n]) for n in names}, **(after or {})}
    return create_model(name, __base__=_Model, __doc__=doc, __module__=__name__, __validators__=validators, **fields)


class SearchRequest(_Model):
    """A text query with optional filters; `user_id` lets a personalising service tailor the ranking."""

    # pattern: at least one non-space character; a blank query would match everything arbitrarily.
    query: NonEmptyText = Field(examples=["sanding roll 120 grit"], pattern=r"\S")
    k: int = Field(10, ge=1, le=100, description="how many results")
    user_id: Identifier | None = None
    category: ShortText | None = Field(
        None, description="keep items of this category: its path and sub-categories (model-backed), or containing this text (default services)"
    )
    brand: ShortText | None = Field(None, description="keep items of this brand (case-insensitive)")
    price_min: float | None = Field(None, ge=0, allow_inf_nan=False)
    price_max: float | None = Field(None, ge=0, allow_inf_nan=False)
    correct: bool = Field(True, description="correct misspelt words (false: search exactly as typed, e.g. after 'search instead for')")


if TYPE_CHECKING:
    ItemHit: TypeAlias = Any  # a class spec_model builds at import time, opaque to mypy
else:
    ItemHit = spec_model(
        "ItemHit",
        Item,
        "One item in a result list, with the score that ranked it.",
        posted=False,
        include=("item_id", "title", "category", "brand", "price"),
        after={"score": float},
    )


class DidYouMean(_Model):
    """Words that were corrected before searching; `original` is the query as typed, to offer searching it instead."""

    original: str
    corrected: str
    corrections: dict[str, str] = Field(description="typed word -> the word searched for")


class Relaxation(_Model):
    """How a query no item matched was relaxed: words no item holds dropped, then the rarest words, or dense retrieval alone."""

    searched: str = Field(description="the words the results are for")
    dropped: list[str] = Field(description="words left out: those no item holds, then the rarest, in the order dropped")
    dense_only: bool
    step: Step = Field(description="the step of the ladder that answered: unknown_dropped, rarest_dropped or dense_only")


class AppliedRule(_Model):
    """A merchandising rule that changed this result list."""

    rule_id: int
    action: str
    item_id: str
    position: int | None = Field(description="the item's place in the returned list (1-based); null when hidden or beyond k")


class SearchResponse(_Model):
    """Ranked matches, how many matched in all, and facet counts over every match."""

    query: str
    total: int
    items: list[ItemHit]
    facets: dict[str, dict[str, int]] = Field(description="facet name -> value -> matching items")
    source: str = Field(description="which service ranked the results")
    did_you_mean: DidYouMean | None = Field(None, description="set when misspelt words were corrected")
    relaxed: Relaxation | None = Field(None, description="set when no item matched every word")
    rules: list[AppliedRule] = Field(default_factory=list, description="merchandising rules applied after ranking")


class Recommendations(_Model):
    """Items recommended to a user."""

    user_id: str
    items: list[ItemHit]
    source: str
    model: str | None = Field(None, description="the version of the model folder that answered (serving a model folder)")


class SimilarItems(_Model):
    """Items similar to one item."""

    item_id: str
    items: list[ItemHit]
    source: str
    model: str | None = Field(None, description="the version of the model folder that answered (serving a model folder)")


if TYPE_CHECKING:
    EventOut: TypeAlias = Any  # a class spec_model builds at import time, opaque to mypy
else:
    EventOut = spec_model(
        "EventOut",
        Event,
        "A stored event as the API returns it.",
        posted=False,
        include=("item_id", "event_type", "timestamp", "session_id", "query", "rating"),
        before={"id": int},
    )


class Share(_Model):
    """A category or brand with the share of a user's events on it."""

    name: str
    share: float


class Contribution(_Model):
    """An item behind part of a profile, with its share of that part's weight."""

    item_id: str
    share: float


class Affinity(_Model):
    """A category or brand, the user's time-decayed share of interest in it, and the items behind it."""

    name: str
    affinity: float
    items: list[Contribution]


class PriceBand(_Model):
    """Quartiles of the prices of the items a user touched, over this many priced items."""

    low: float
    median: float
    high: float
    items: int


class Activity(_Model):
    """Events per active day, bucketed: occasional, regular, frequent or heavy."""

    level: str
    events_per_active_day: float
    active_days: int


if TYPE_CHECKING:
    Moment: TypeAlias = Any  # a class spec_model builds at import time, opaque to mypy
else:
    Moment = spec_model("Moment", Event, "An event as a profile remembers it.", posted=False, include=("item_id", "event_type", "timestamp"))


class ProfileDetail(_Model):
    """The parts of a live profile, each with the items or events behind it."""

    long_term_items: list[Contribution] = Field(description="items weighing most in the time-decayed long-term interest vector")
    session_start: datetime | None = Field(description="first event after the last pause longer than profile.session_gap_minutes")
    session_events: int
    session: list[Moment] = Field(description="the session's latest events")
    session_items: list[Contribution] = Field(description="items behind the session (short-term) interest vector")
    categories: list[Affinity]
    brands: list[Affinity]
    price_band: PriceBand | None = Field(description="absent when no touched item has a price")
    activity: Activity
    intent: dict[str, float] = Field(description="shares of event types within profile.intent_window_days of the last event")
    intent_events: list[Moment] = Field(description="the latest events in the intent window")


class Profile(_Model):
    """What the service knows about a user, and why: the counts and recent events it is built from."""

    user_id: str
    event_count: int
    last_seen: datetime
    event_types: dict[str, int]
    top_categories: list[Share]
    top_brands: list[Share]
    recent_events: list[EventOut]
    source: str
    detail: ProfileDetail | None = Field(None, description="the live profile with its explanation (model-backed services)")
    intent_prediction: dict[str, float] | None = Field(
        None, description="the intent model's browse/compare/buy probabilities for the user's next event (a model folder with an intent model)"
    )


ATTRIBUTES_MAX_DEPTH = 32  # nesting levels of objects and lists; pydantic cannot serialise much past 255


def _depth(value: Any) -> int:
    """How deeply objects and lists nest in a JSON value, walked without recursion so no depth can overflow the stack."""
    deepest, pending = 0, [(value, 0)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth > ATTRIBUTES_MAX_DEPTH:
                break
            pending.extend((child, depth) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def attributes_storable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse attributes the stores cannot hold: nested deeper than 32 levels, NaN or infinite numbers, invalid Unicode, or over 20,000 characters of JSON."""
    # Nested values escape the field checks: a lone surrogate, NaN or a deep nesting would fail only when stored or sent back.
    if value is not None:
        if _depth(value) > ATTRIBUTES_MAX_DEPTH:
            raise ValueError(f"attributes must nest at most {ATTRIBUTES_MAX_DEPTH} levels of objects and lists")
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except ValueError:
            raise ValueError("attributes must not contain NaN or infinite numbers") from None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("attributes must be valid Unicode (no lone surrogates)") from None
        if len(text) > 20_000:
            raise ValueError("attributes must be at most 20,000 characters as JSON")
    return value


if TYPE_CHECKING:
    ItemIn: TypeAlias = Any  # a class spec_model builds at import time, opaque to mypy
else:
    ItemIn = spec_model(
        "ItemIn",
        Item,
        "An item to add or update; the fields of the canonical items table.",
        posted=True,
        validators={"_attributes_storable": field_validator("attributes")(attributes_storable)},
    )


class ItemBatch(_Model):
    """Items to add or update together."""

    items: list[ItemIn] = Field(min_length=1, max_length=1000)


class ItemsWritten(_Model):
    """Which items were stored and are searchable now."""

    count: int
    item_ids: list[str]


class EventsWritten(_Model):
    """Ids of the committed events, in the order posted."""

    count: int
    ids: list[int]


class Erased(_Model):
    """How much of a user's data was erased."""

    user_id: str
    events_deleted: int


class Health(_Model):
    """Liveness and whether the store answers."""

    status: str
    store: str
    events: int
    model: str | None = Field(None, description="the version of the model folder being served, if any")
    process: int = Field(description="the id of the server process that answered (one of serve.workers; each connection stays with one)")
