"""Commands that read raw event files apply the audit's event rules, and say so when a filter or user cannot match."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from longtail.cli import app
from longtail.core.config import LongtailConfig
from longtail.data.loaders import to_canonical
from longtail.data.schema import EVENTS
from longtail.quality.audit import apply_event_rules


def test_event_rules_drop_what_the_audit_rejects_and_count_it() -> None:
    raw = pl.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["A", "A", "A"],
            "event_type": ["purchase", "purchased!", "view"],
            "timestamp": ["2024-01-05T10:00:00", "2024-01-05T11:00:00", "yesterday"],
        }
    )
    kept, rejected = apply_event_rules(to_canonical(raw, EVENTS, "<events>"), LongtailConfig())
    assert kept["event_type"].to_list() == ["purchase"]
    assert rejected == {"invalid_event_type": 1, "unparseable_timestamp": 1}


def test_profile_skips_rejected_event_types_with_a_warning(tmp_path: Path) -> None:
    pl.DataFrame({"item_id": ["A"], "title": ["Red mug"]}).write_csv(tmp_path / "items.csv")
    pl.DataFrame(
        {"user_id": ["u", "u"], "item_id": ["A", "A"], "event_type": ["purchase", "stolen"], "timestamp": ["2024-01-05T10:00:00", "2024-01-05T11:00:00"]}
    ).write_csv(tmp_path / "events.csv")
    result = CliRunner().invoke(app, ["profile", "u", "--items", str(tmp_path / "items.csv"), "--events", str(tmp_path / "events.csv"), "--json"])
    assert result.exit_code == 0, result.output
    assert "invalid_event_type 1" in " ".join(result.output.split())
    assert '"events": 1' in result.output
