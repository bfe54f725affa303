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


_STORABLE = AfterValidator(_storable)
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=128), _STORABLE]
ShortText = Annotated[str, StringConstraints(max_length=1_000), _STORABLE]
NonEmptyText = Annotated[str, StringConstraints(min_length=1, max_length=1_000), _STORABLE]
LongText = Annotated[str, StringConstraints(max_length=20_000), _STORABLE]
