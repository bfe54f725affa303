"""Polars expression helpers shared by loaders, adapters and checks."""

from __future__ import annotations

import polars as pl


def describe(*parts: str | pl.Expr) -> pl.Expr:
    """Concatenate literal text and column values into one string column.

    Used instead of `pl.format`, which panics on filtered string columns in the pinned polars.
    """
    return pl.concat_str([part if isinstance(part, pl.Expr) else pl.lit(part) for part in parts])
