"""String types for request fields that every store can hold, with the length limits the data spec declares."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, StringConstraints

from longtail.data.schema import IDENTIFIER, NON_EMPTY_TEXT, SHORT_TEXT


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


def storable_text(limits: dict[str, Any]) -> Any:
    """A request string type: the spec's limits (min_length, max_length, pattern), refused if a store cannot hold it."""
    return Annotated[str, StringConstraints(**limits), _STORABLE]


Identifier = storable_text(IDENTIFIER)
ShortText = storable_text(SHORT_TEXT)
NonEmptyText = storable_text(NON_EMPTY_TEXT)
