"""Detect and repair noisy text: HTML markup, mojibake, boilerplate."""

from __future__ import annotations

import html
import re

import ftfy
import ftfy.badness
import polars as pl

HTML_PATTERN = r"(?i)<\s*/?\s*[a-z][a-z0-9]*(\s[^<>]*)?/?\s*>|&(?:[a-z]{2,8}|#\d{2,6}|#x[0-9a-f]{2,5});"
_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?\s*>")
_SPACES = re.compile(r"\s+")
BOILERPLATE_PATTERN = (
    r"(?i)lorem ipsum|click here|buy now|free shipping|100% satisfaction|best price guaranteed|"
    r"limited time offer|see (the )?description|no description( available)?|^\s*(n/?a|tbd|none|null)\s*$|"
    r"包邮|点击购买|限时抢购|暂无描述"
)


def strip_html(text: str) -> str:
    """Remove tags and unescape entities, collapsing the whitespace they leave."""
    return _SPACES.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def has_mojibake(text: str) -> bool:
    """True when text looks like UTF-8 decoded with the wrong codec (e.g. 'CafÃ©')."""
    return ftfy.badness.is_bad(text)


def fix_mojibake(text: str) -> str:
    """Undo a wrong-codec round trip without touching quotes, widths or normalisation."""
    return ftfy.fix_encoding(text)


def html_mask(column: str) -> pl.Expr:
    """Rows whose text contains HTML tags or entities."""
    return pl.col(column).str.contains(HTML_PATTERN).fill_null(False)


def mojibake_mask(column: str) -> pl.Expr:
    """Rows whose text looks like mojibake; only non-ASCII text is examined."""
    non_ascii = pl.col(column).str.contains(r"[^\x00-\x7f]").fill_null(False)
    return non_ascii & pl.col(column).map_elements(has_mojibake, return_dtype=pl.Boolean, skip_nulls=True).fill_null(False)


def boilerplate_mask(column: str) -> pl.Expr:
    """Rows whose text is, or contains, stock filler phrases."""
    return pl.col(column).str.contains(BOILERPLATE_PATTERN).fill_null(False)


def repaired(column: str, fix_html: bool, fix_encoding: bool) -> pl.Expr:
    """The column with HTML stripped and mojibake undone, as configured."""
    expr = pl.col(column)
    if fix_encoding:
        expr = pl.when(mojibake_mask(column)).then(expr.map_elements(fix_mojibake, return_dtype=pl.String, skip_nulls=True)).otherwise(expr)
    if fix_html:
        expr = pl.when(expr.str.contains(HTML_PATTERN).fill_null(False)).then(
            expr.map_elements(strip_html, return_dtype=pl.String, skip_nulls=True)
        ).otherwise(expr)
    return expr
