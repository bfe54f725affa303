"""The canonical tables: column names, types, which are required, and pandera contracts."""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

EVENT_TYPES: tuple[str, ...] = ("search", "view", "click", "add_to_cart", "purchase", "rating", "review", "return")
SOURCE_ROW = "source_row"
UTC_DATETIME = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class TableSpec:
    """Columns of one canonical table: name -> polars type, and which must be present in a file."""

    name: str
    columns: dict[str, pl.DataType]
    required: tuple[str, ...]
    key: tuple[str, ...]
    free_attributes: bool = False

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


ITEMS = TableSpec(
    name="items",
    columns={
        "item_id": pl.String(),
        "title": pl.String(),
        "description": pl.String(),
        "category": pl.String(),
        "brand": pl.String(),
        "price": pl.Float64(),
        "currency": pl.String(),
        "attributes": pl.String(),
        "created_at": UTC_DATETIME,
        "language": pl.String(),
    },
    required=("item_id", "title"),
    key=("item_id",),
)

EVENTS = TableSpec(
    name="events",
    columns={
        "user_id": pl.String(),
        "item_id": pl.String(),
        "event_type": pl.String(),
        "timestamp": UTC_DATETIME,
        "session_id": pl.String(),
        "query": pl.String(),
        "rating": pl.Float64(),
        "text": pl.String(),
        "attributes": pl.String(),
    },
    required=("user_id", "item_id", "event_type", "timestamp"),
    key=(),
)

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
        {
            name: pa.Column(dtype, checks=checks.get(name, []), nullable=name not in not_null, unique=name in unique)
            for name, dtype in spec.columns.items()
        },
        strict=True,
        name=f"clean {spec.name}",
    )


CLEAN_CONTRACTS: dict[str, pa.DataFrameSchema] = {
    "items": _contract(
        ITEMS,
        {"title": [pa.Check.str_length(min_value=1)], "price": [pa.Check.gt(0)]},
        not_null={"item_id", "title"},
        unique={"item_id"},
    ),
    "events": _contract(
        EVENTS,
        {"event_type": [pa.Check.isin(list(EVENT_TYPES))]},
        not_null={"user_id", "event_type", "timestamp"},
        unique=set(),
    ),
}
