"""The optional ingestion privacy step runs before the audit, so its artifacts hold no raw user id or PII."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.core.errors import PrivacyError
from longtail.data.adapters import load_dataset
from longtail.pipeline.audit_step import run_audit_on_tables
from longtail.privacy.pseudonym import Pseudonymiser

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def slice_(datasets_root: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    data = load_dataset("scientific", datasets_root)
    events = data.events.head(300).with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("usb hub, call 415-555-0132")).otherwise(None).alias("query"))
    items = data.items.join(events.select("item_id").unique(), on="item_id", how="semi")
    return items, events


def test_audit_sees_pseudonyms_and_scrubbed_queries_when_privacy_is_enabled(
    slice_: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items, events = slice_
    monkeypatch.setenv("LONGTAIL_PSEUDONYM_KEY", KEY)
    config = LongtailConfig.model_validate({"privacy": {"enabled": True}})
    result = run_audit_on_tables(items, events, tmp_path, config)
    kept = result.tables["events"].kept
    expected = {Pseudonymiser(KEY.encode()).pseudonym(user) for user in events.get_column("user_id").unique()}
    assert set(kept.get_column("user_id")) == expected
    assert kept.get_column("query").drop_nulls().to_list() == ["usb hub, call [PHONE]"]
    # No artifact (report, cleaned/quarantined/flagged tables, saved config) holds a raw id, the phone number or the key.
    texts = [path.read_text(encoding="utf-8") for path in tmp_path.rglob("*") if path.suffix in {".json", ".html", ".yaml"}]
    texts += [pl.read_parquet(path).write_csv() for path in tmp_path.rglob("*.parquet")]
    assert len(texts) >= 9
    raw_ids = set(events.get_column("user_id"))
    for text in texts:
        assert "415-555-0132" not in text and KEY not in text
        assert not any(raw in text for raw in raw_ids)


def test_enabled_privacy_without_a_key_stops_before_writing_anything(
    slice_: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items, events = slice_
    monkeypatch.delenv("LONGTAIL_PSEUDONYM_KEY", raising=False)
    with pytest.raises(PrivacyError, match="LONGTAIL_PSEUDONYM_KEY"):
        run_audit_on_tables(items, events, tmp_path / "out", LongtailConfig.model_validate({"privacy": {"enabled": True}}))
    assert not (tmp_path / "out").exists()
