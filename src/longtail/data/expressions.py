"""Polars expression helpers shared by loaders, adapters and checks, and the column expressions a config may give."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from longtail.core.errors import InputDataError


def describe(*parts: str | pl.Expr) -> pl.Expr:
    """Concatenate literal text and column values into one string column.

    Used instead of `pl.format`, which panics on filtered string columns in the pinned polars.
    """
    return pl.concat_str([part if isinstance(part, pl.Expr) else pl.lit(part) for part in parts])


def apply_expressions(frame: pl.DataFrame, expressions: dict[str, str], path: str | Path) -> pl.DataFrame:
    """Add (or replace) columns computed by SQL expressions over the frame's columns: `'purchase'`, `upper(sku)`, `CASE ... END`."""
    if not expressions:
        return frame
    computed = []
    for target, text in expressions.items():
        try:
            expression = pl.sql_expr(text)
            frame.head(1).select(expression)
        except pl.exceptions.PolarsError as error:  # SQL syntax, unknown column and compute errors alike
            raise InputDataError(path, f"expression for '{target}' cannot be evaluated: {text!r} ({error}); columns: {frame.columns}", column=target) from None
        computed.append(expression.alias(target))
    return frame.with_columns(computed)
