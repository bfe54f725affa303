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


def non_ascii_mask(column: str) -> pl.Expr:
    """Rows with any non-ASCII character: the only ones that can hold mojibake (a cheap vectorised pre-filter)."""
    return pl.col(column).str.contains(r"[^\x00-\x7f]").fill_null(False)


def mojibake_rows(table: pl.DataFrame, column: str, key: str) -> pl.DataFrame:
    """The `key` values of rows whose text looks like mojibake; Python runs only on non-ASCII rows."""
    candidates = table.filter(non_ascii_mask(column)).select(key, column)
    bad = candidates[column].map_elements(has_mojibake, return_dtype=pl.Boolean)
    return candidates.filter(bad).select(key)


def boilerplate_mask(column: str) -> pl.Expr:
    """Rows whose text is, or contains, stock filler phrases."""
    return pl.col(column).str.contains(BOILERPLATE_PATTERN).fill_null(False)


def repair_text(text: str, fix_html: bool, fix_encoding: bool) -> str:
    """Text with mojibake undone and HTML stripped, as configured."""
    if fix_encoding and has_mojibake(text):
        text = fix_mojibake(text)
    if fix_html and re.search(HTML_PATTERN, text):
        text = strip_html(text)
    return text


def repair_column(table: pl.DataFrame, column: str, key: str, fix_html: bool, fix_encoding: bool) -> pl.DataFrame:
    """The table with one text column repaired; Python runs only on rows the vectorised pre-filters select."""
    noisy = html_mask(column) | non_ascii_mask(column)
    candidates = table.filter(noisy).select(key, column)
    if candidates.height == 0:
        return table
    fixed = candidates.with_columns(pl.col(column).map_elements(lambda text: repair_text(text, fix_html, fix_encoding), return_dtype=pl.String))
    return table.update(fixed, on=key)
