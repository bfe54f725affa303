"""The canonical tables: column names, types, which are required, and pandera contracts."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pandera.polars as pa
import polars as pl

from longtail.core.config import EVENT_TYPES

SOURCE_ROW = "source_row"
UTC_DATETIME = pl.Datetime("us", "UTC")

# Length limits of posted text; every store holds these, and the API rejects longer values at the edge.
IDENTIFIER = {"min_length": 1, "max_length": 128}
SHORT_TEXT = {"max_length": 1_000}
NON_EMPTY_TEXT = {"min_length": 1, "max_length": 1_000}
LONG_TEXT = {"max_length": 20_000}


def column(
    *, default: bool = False, limits: dict[str, Any] | None = None, description: str = "", choices: tuple[str, ...] = (), omittable: bool = False
) -> Any:
    """One field of a spec: `default` makes it an optional column (None when absent); the rest is its API contract.

    `limits` are pydantic constraints (min_length, max_length, pattern, ge, allow_inf_nan), `choices` the allowed
    values, and `omittable` lets a client leave out a field the table needs because the server fills it in.
    """
    metadata = {"limits": limits or {}, "description": description, "choices": choices, "omittable": omittable}
    return field(default=None, metadata=metadata) if default else field(metadata=metadata)


@dataclass(frozen=True)
class Item:
    """The one declaration of the items table: a field without a default is a column every file must have,
    `| None` marks a column that may be null in clean data."""

    item_id: str = column(limits=IDENTIFIER)
    title: str = column(limits=NON_EMPTY_TEXT)
    description: str | None = column(default=True, limits=LONG_TEXT)
    category: str | None = column(default=True, limits=SHORT_TEXT, description='a path such as "Tools > Abrasives > Sanding Rolls"')
    brand: str | None = column(default=True, limits=SHORT_TEXT)
    price: float | None = column(default=True, limits={"ge": 0, "allow_inf_nan": False})
    currency: str | None = column(default=True, limits={"pattern": r"^[A-Z]{3}$"})
    # Free-form key/values: a JSON object in the API, its JSON text in tables.
    attributes: dict[str, Any] | None = column(default=True)
    created_at: datetime | None = column(default=True)
    language: str | None = column(default=True, limits={"max_length": 16, "pattern": r"^[A-Za-z-]+$"})


@dataclass(frozen=True)
class Event:
    """The one declaration of the events table (same conventions as `Item`); served events are instances of it."""

    user_id: str = column(limits=IDENTIFIER)
    item_id: str | None = column(limits=IDENTIFIER, description="required except for search events")
    event_type: str = column(choices=EVENT_TYPES)
    timestamp: datetime = column(omittable=True, description="ISO 8601; no offset means UTC; omitted means the time it is received")
    session_id: str | None = column(default=True, limits=IDENTIFIER)
    query: str | None = column(default=True, limits=NON_EMPTY_TEXT, description="required for search events")
    rating: float | None = column(default=True, limits={"allow_inf_nan": False}, description="1-5; required for rating events")
    text: str | None = column(default=True, limits=LONG_TEXT, description="review text")
    # Free-form key/values as on items; transaction lines keep quantity, price, invoice and title here.
    attributes: dict[str, Any] | None = column(default=True)


@dataclass(frozen=True)
class EventRule:
    """An optional events column that events of some types must fill (`only` those types, or all `unless` these)."""

    field: str
    needs: str
    only: tuple[str, ...] | None = None
    unless: tuple[str, ...] = ()

    def applies(self, event_type: str) -> bool:
        """Whether an event of this type must fill the field."""
        return event_type in self.only if self.only is not None else event_type not in self.unless

    def applies_expr(self) -> pl.Expr:
        """`applies` over an events table's event_type column (an unknown type counts as not in `only`/`unless`)."""
        kind = pl.col("event_type")
        return kind.is_in(list(self.only)) if self.only is not None else ~kind.is_in(list(self.unless))


# The one set of per-type rules: the audit quarantines rows breaking them, the API refuses such events.
EVENT_RULES: tuple[EventRule, ...] = (
    EventRule("query", "a non-empty query", only=("search",)),
    EventRule("item_id", "an item_id", unless=("search",)),
    EventRule("rating", "a rating", only=("rating",)),
)


def missing_fields(event_type: str, values: dict[str, Any]) -> list[str]:
    """What an event of this type lacks ("an item_id", ...), in rule order; blank text counts as missing."""
    return [rule.needs for rule in EVENT_RULES if rule.applies(event_type) and (values.get(rule.field) is None or str(values[rule.field]).strip() == "")]


@dataclass(frozen=True)
class FieldSpec:
    """One field of a spec, resolved: its Python type without None, nullability, whether files must have it, its API contract."""

    name: str
    python_type: type
    nullable: bool
    required: bool
    limits: dict[str, Any]
    description: str
    choices: tuple[str, ...]
    omittable: bool

    @property
    def dtype(self) -> pl.DataType:
        """The column's polars type (JSON objects are stored as their text)."""
        return {str: pl.String(), float: pl.Float64(), int: pl.Int64(), datetime: UTC_DATETIME, dict: pl.String()}[self.python_type]


def spec_fields(spec: type) -> list[FieldSpec]:
    """The fields of a spec dataclass (`Item`, `Event` or one built like them), in declaration order."""
    hints = get_type_hints(spec)
    resolved = []
    for spec_field in fields(spec):
        hint = hints[spec_field.name]
        members = get_args(hint) if get_origin(hint) in (Union, UnionType) else (hint,)
        kept = [member for member in members if member is not type(None)]
        resolved.append(
            FieldSpec(
                name=spec_field.name,
                python_type=get_origin(kept[0]) or kept[0],
                nullable=len(kept) < len(members),
                required=spec_field.default is MISSING,
                **spec_field.metadata,
            )
        )
    return resolved


@dataclass(frozen=True)
class TableSpec:
    """Columns of one canonical table: name -> polars type, and which must be present in a file."""

    name: str
    columns: dict[str, pl.DataType]
    required: tuple[str, ...]
    key: tuple[str, ...]
    free_attributes: bool = False
    not_null: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


def table_spec(name: str, spec: type, key: tuple[str, ...]) -> TableSpec:
    """The canonical table a spec dataclass declares."""
    resolved = spec_fields(spec)
    return TableSpec(
        name,
        {f.name: f.dtype for f in resolved},
        tuple(f.name for f in resolved if f.required),
        key,
        not_null=tuple(f.name for f in resolved if not f.nullable),
    )


ITEMS = table_spec("items", Item, key=("item_id",))
EVENTS = table_spec("events", Event, key=())

USERS = TableSpec(
    name="users",
    columns={"user_id": pl.String()},
    required=("user_id",),
    key=("user_id",),
    free_attributes=True,
)

JUDGMENTS = TableSpec(
    name="judgments",
    columns={"query_id": pl.String(), "query": pl.String(), "item_id": pl.String(), "grade": pl.Float64()},
    required=("query", "item_id", "grade"),
    key=("query_id", "item_id"),
)

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (ITEMS, EVENTS, USERS, JUDGMENTS)}


def empty_table(spec: TableSpec) -> pl.DataFrame:
    """An empty frame with the canonical columns and types of a table."""
    return pl.DataFrame(schema=spec.columns)


def _contract(spec: TableSpec, checks: dict[str, list[pa.Check]], not_null: set[str], unique: set[str]) -> pa.DataFrameSchema:
    """A pandera schema for a cleaned table: canonical types plus the rules cleaning guarantees."""
    return pa.DataFrameSchema(
        {name: pa.Column(dtype, checks=checks.get(name, []), nullable=name not in not_null, unique=name in unique) for name, dtype in spec.columns.items()},
        strict=True,
        name=f"clean {spec.name}",
    )


CLEAN_CONTRACTS: dict[str, pa.DataFrameSchema] = {
    "items": _contract(
        ITEMS,
        {"title": [pa.Check.str_length(min_value=1)], "price": [pa.Check.gt(0)]},
        not_null=set(ITEMS.not_null),
        unique={"item_id"},
    ),
    "events": _contract(
        EVENTS,
        {"event_type": [pa.Check.isin(list(EVENT_TYPES))]},
        not_null=set(EVENTS.not_null),
        unique=set(),
    ),
}
