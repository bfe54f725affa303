"""String types for request fields that every store can hold."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def _storable(value: str) -> str:
    # PostgreSQL TEXT rejects NUL and no store can encode a lone surrogate that JSON "\ud800" yields,
    # so both are refused at the edge instead of failing inside a transaction.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def _bounded(max_length: int, min_length: int = 0) -> type[str]:
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_storable)]  # type: ignore[return-value]


Identifier = _bounded(128, 1)
ShortText = _bounded(1_000)
NonEmptyText = _bounded(1_000, 1)
LongText = _bounded(20_000)
