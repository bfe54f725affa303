"""Turn a shop's line-item transaction log (one row per invoice line) into canonical items and typed events."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from longtail.core.config import DataConfig
from longtail.core.errors import DataWarning, InputDataError
from longtail.data.expressions import apply_expressions
from longtail.data.loaders import normalise_float_ids
from longtail.data.schema import SOURCE_ROW

# Export column names seen in the wild, compared lower-case with anything but letters and digits removed.
ROLE_NAMES: dict[str, tuple[str, ...]] = {
    "invoice": ("invoiceno", "invoice", "invoiceid", "invoicenumber", "orderid", "order", "orderno", "ordernumber", "transactionid", "receipt"),
    "item_id": ("stockcode", "sku", "itemid", "productid", "productcode", "itemcode", "article", "articleno", "ean"),
    "title": ("description", "title", "productname", "itemname", "name", "product"),
    "quantity": ("quantity", "qty", "units", "amount"),
    "price": ("unitprice", "price", "unitcost", "itemprice"),
    "timestamp": ("invoicedate", "orderdate", "timestamp", "datetime", "date", "time", "transactiondate"),
    "user_id": ("customerid", "customer", "userid", "clientid", "customerno", "buyerid", "user"),
}
REQUIRED_ROLES = ("item_id", "quantity", "timestamp")
# Day-first and month-first forms of spreadsheet exports; ISO forms are tried by the loaders anyway.
TIMESTAMP_CANDIDATES = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y %H:%M",
    "%m/%d/%y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%Y",
    "%d/%m/%Y %H:%M",
    "%d/%m/%y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%y %H:%M:%S",
    "%d/%m/%Y",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%d-%m-%Y %H:%M",
    "%d-%m-%Y",
)
RETURN = "return"
PURCHASE = "purchase"


@dataclass
class TransactionTables:
    """The converter's output: canonical items and events, and what it decided on the way (for the user to check)."""

    items: pl.DataFrame
    events: pl.DataFrame
    summary: dict[str, object]


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def resolve_columns(columns: list[str], configured: dict[str, str], path: str | Path) -> dict[str, str]:
    """Role -> source column: the configured ones, the rest found by common export names; required roles must be found."""
    unknown_roles = sorted(set(configured) - set(ROLE_NAMES))
    if unknown_roles:
        raise InputDataError(path, f"data.transactions.columns names unknown roles {unknown_roles}; use {sorted(ROLE_NAMES)}")
    missing = [source for source in configured.values() if source not in columns]
    if missing:
        raise InputDataError(path, f"data.transactions.columns names columns that are not in the file: {missing} (found: {columns})")
    resolved = dict(configured)
    by_key = {_key(column): column for column in columns}
    for role, names in ROLE_NAMES.items():
        if role in resolved:
            continue
        taken = set(resolved.values())
        found = next((by_key[name] for name in names if name in by_key and by_key[name] not in taken), None)
        if found is not None:
            resolved[role] = found
    for role in REQUIRED_ROLES:
        if role not in resolved:
            raise InputDataError(
                path, f"no column for the {role} of a line (found: {columns}); name it in data.transactions.columns, e.g. {{{role}: YourColumn}}", column=role
            )
    return resolved


def detect_timestamp_format(values: pl.Series) -> str | None:
    """The candidate format that reads the most of the given text values (None when none reads any)."""
    text = values.drop_nulls().cast(pl.String).str.strip_chars()
    sample = text.unique(maintain_order=True).head(20_000)
    best, best_count = None, 0
    for fmt in TIMESTAMP_CANDIDATES:
        year = sample.str.to_datetime(fmt, strict=False).dt.year()
        # Plausible years only: '%Y' reads '12/1/10' as the year 10.
        count = int(year.is_between(1900, 2200).sum())
        # A strictly better count wins, so month-first beats day-first only when the data says so (a day above 12).
        if count > best_count:
            best, best_count = fmt, count
    return best


def detect_return_prefix(lines: pl.DataFrame) -> str | None:
    """A letter prefix that marks most negative-quantity invoices and almost no positive ones (e.g. 'C' for cancellations), if any."""
    prefixed = lines.filter(pl.col("quantity").is_not_null(), pl.col("quantity") != 0).select(
        pl.col("invoice").str.extract(r"^([A-Za-z]+)\d", 1).alias("prefix"), (pl.col("quantity") < 0).alias("negative")
    )
    shares = prefixed.group_by("prefix").agg(pl.col("negative").sum().alias("negative"), (~pl.col("negative")).sum().alias("positive"))
    negatives, positives = max(int(prefixed["negative"].sum()), 1), max(int((~prefixed["negative"]).sum()), 1)
    marking = shares.filter(pl.col("prefix").is_not_null(), pl.col("negative") / negatives >= 0.5, pl.col("positive") / positives <= 0.01)
    return marking["prefix"][0] if marking.height else None


def _number(column: str, dtype: pl.DataType, decimal_separator: str) -> pl.Expr:
    if dtype.is_numeric():
        return pl.col(column)
    text = pl.col(column).cast(pl.String).str.strip_chars()
    if decimal_separator == ",":
        text = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
    return text.cast(pl.Float64, strict=False)


def _timestamps(frame: pl.DataFrame, column: str, data: DataConfig, path: str | Path) -> tuple[pl.Expr, str | None]:
    """Parsed times as ISO text (UTC), or the raw text where a cell does not parse, so the audit can quarantine it with its value."""
    dtype = frame.schema[column]
    if isinstance(dtype, pl.Datetime | pl.Date):
        parsed = pl.col(column).cast(pl.Datetime("us"))
        return parsed.dt.strftime("%Y-%m-%dT%H:%M:%S"), None
    fmt = data.timestamp_format or detect_timestamp_format(frame[column])
    if fmt is None:
        warnings.warn(DataWarning(f"{path}: no known time format reads column '{column}' (e.g. {frame[column][0]!r}); set data.timestamp_format"), stacklevel=3)
        return pl.col(column).cast(pl.String), None
    raw = pl.col(column).cast(pl.String).str.strip_chars()
    parsed = raw.str.to_datetime(fmt, strict=False, time_unit="us")
    return pl.coalesce(parsed.dt.strftime("%Y-%m-%dT%H:%M:%S"), raw), fmt


def read_lines(raw: pl.DataFrame, data: DataConfig, path: str | Path) -> tuple[pl.DataFrame, dict[str, str], str | None, str | None]:
    """One canonical row per input line: roles renamed, numbers and times read, ids normalised, the event type decided.

    Also returns the role -> column map, the time format and the return-invoice prefix it used.
    """
    frame = apply_expressions(raw, data.expressions.events, path)
    roles = resolve_columns(frame.columns, data.transactions.columns, path)
    renamed = normalise_float_ids(frame.rename({source: role for role, source in roles.items()}), path)
    timestamp, fmt = _timestamps(renamed, "timestamp", data, path)
    text_roles = [role for role in ("invoice", "item_id", "title", "user_id") if role in renamed.columns]
    blank_to_null = [pl.col(role).cast(pl.String).str.strip_chars().replace("", None).alias(role) for role in text_roles]
    numbers = [_number(role, renamed.schema[role], data.decimal_separator).alias(role) for role in ("quantity", "price") if role in renamed.columns]
    lines = renamed.with_row_index(SOURCE_ROW, offset=1).with_columns(*blank_to_null, *numbers, timestamp.alias("timestamp"))
    for role in ("invoice", "title", "user_id"):
        if role not in lines.columns:
            lines = lines.with_columns(pl.lit(None, pl.String).alias(role))
    if "price" not in lines.columns:
        lines = lines.with_columns(pl.lit(None, pl.Float64).alias("price"))
    prefix = data.transactions.return_invoice_prefix
    if prefix is None:
        prefix = detect_return_prefix(lines)
    is_return = pl.col("invoice").str.starts_with(prefix).fill_null(False) if prefix else (pl.col("quantity") < 0).fill_null(False)
    if "event_type" not in lines.columns:
        lines = lines.with_columns(pl.when(is_return).then(pl.lit(RETURN)).otherwise(pl.lit(PURCHASE)).alias("event_type"))
    return lines, roles, fmt, prefix


def catalogue(lines: pl.DataFrame) -> pl.DataFrame:
    """One item per code: its most frequent title (on priced lines first), median positive price, first and last seen."""
    titled = lines.filter(pl.col("item_id").is_not_null(), pl.col("title").is_not_null())
    title_counts = titled.group_by("item_id", "title").agg(
        (pl.col("price") > 0).sum().alias("priced"), pl.len().alias("lines"), pl.col(SOURCE_ROW).min().alias("first_row")
    )
    titles = (
        title_counts.sort(["item_id", "priced", "lines", "first_row"], descending=[False, True, True, False])
        .group_by("item_id", maintain_order=True)
        .agg(pl.col("title").first(), pl.len().alias("title_variants"))
    )
    times = pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False)
    items = (
        lines.filter(pl.col("item_id").is_not_null())
        .group_by("item_id", maintain_order=True)
        .agg(
            pl.col("price").filter(pl.col("price") > 0).median().alias("price"),
            times.min().alias("first_seen"),
            times.max().alias("last_seen"),
            pl.len().alias("lines"),
        )
        .join(titles, on="item_id", how="left")
    )
    attributes = pl.struct(pl.col("last_seen").dt.strftime("%Y-%m-%dT%H:%M:%S"), pl.col("lines"), pl.col("title_variants").fill_null(0)).struct.json_encode()
    return items.select(
        "item_id",
        "title",
        "price",
        pl.col("first_seen").dt.strftime("%Y-%m-%dT%H:%M:%S").alias("created_at"),
        attributes.alias("attributes"),
    )


def events_from_lines(lines: pl.DataFrame, roles: dict[str, str]) -> pl.DataFrame:
    """Typed events, one per line: the invoice is the session; quantity, price, invoice, title and any other column become attributes."""
    canonical = {"user_id", "item_id", "event_type", "timestamp", SOURCE_ROW}
    kept = [c for c in lines.columns if c not in canonical]
    attributes = pl.struct([pl.col(c) if lines.schema[c].is_numeric() else pl.col(c).cast(pl.String) for c in kept]).struct.json_encode()
    return lines.select("user_id", "item_id", "event_type", "timestamp", pl.col("invoice").alias("session_id"), attributes.alias("attributes"))


def convert_transactions(raw: pl.DataFrame, data: DataConfig, path: str | Path) -> TransactionTables:
    """Items and events from a transaction log, and a summary of the columns, format and rules it used."""
    lines, roles, fmt, prefix = read_lines(raw, data, path)
    items = catalogue(lines)
    events = events_from_lines(lines, roles)
    unparsed = events.filter(pl.col("timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S", strict=False).is_null() & pl.col("timestamp").is_not_null()).height
    summary = {
        "input_lines": raw.height,
        "columns": roles,
        "timestamp_format": fmt,
        "unparsed_timestamps": unparsed,
        "return_rule": f"invoice starts with {prefix!r}" if prefix else "negative quantity",
        "items": items.height,
        "events": events.height,
        "events_by_type": dict(events.group_by("event_type").len().sort("event_type").iter_rows()),
    }
    return TransactionTables(items, events, summary)
