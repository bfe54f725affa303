"""The audit quarantines events by the same per-type rules the API's ingest refuses them by."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from pydantic import ValidationError

from longtail.core.config import QualityConfig
from longtail.data.loaders import INVALID_FIELDS
from longtail.quality.checks import event_validity
from longtail.serve.events import EventIn

NOW = datetime(2025, 1, 1, tzinfo=UTC)
ROWS = [  # (item_id, event_type, query, rating)
    ("i", "view", None, None),
    (None, "view", None, None),
    (None, "search", "q", None),
    ("i", "rating", None, None),
    (None, "search", " ", None),
]


def test_audit_and_api_refuse_the_same_events() -> None:
    events = pl.DataFrame(
        {
            "source_row": list(range(len(ROWS))),
            "user_id": ["u"] * len(ROWS),
            "item_id": [r[0] for r in ROWS],
            "event_type": [r[1] for r in ROWS],
            "timestamp": [datetime(2024, 1, 1, tzinfo=UTC)] * len(ROWS),
            "query": [r[2] for r in ROWS],
            "rating": [r[3] for r in ROWS],
            INVALID_FIELDS: [""] * len(ROWS),
        },
        schema_overrides={"rating": pl.Float64},
    )
    findings = event_validity(events, QualityConfig(), NOW, None)
    assert sorted(zip(findings["source_row"], findings["reason"], strict=True)) == [(1, "missing_item_id"), (3, "missing_rating"), (4, "missing_query")]
    refused = set()
    for row, (item_id, kind, query, rating) in enumerate(ROWS):
        try:
            EventIn(user_id="u", item_id=item_id, event_type=kind, query=query, rating=rating)
        except ValidationError:
            refused.add(row)
    assert refused == {1, 3, 4}
    with pytest.raises(ValidationError, match="a rating event needs a rating"):
        EventIn(user_id="u", item_id="i", event_type="rating")
