"""Pseudonyms are keyed and stable, the ingestion step uses them, and erasure finds a user by either id."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from longtail.core.config import LongtailConfig, PrivacyConfig, save_config
from longtail.core.errors import PrivacyError
from longtail.data.adapters import load_dataset
from longtail.privacy.erasure import erase_user
from longtail.privacy.ingest import apply_privacy
from longtail.privacy.pseudonym import Pseudonymiser, pseudonymiser_from_config

KEY_A = b"a" * 32
KEY_B = b"b" * 32


@pytest.fixture(scope="module")
def events(datasets_root: Path) -> pl.DataFrame:
    return load_dataset("scientific", datasets_root).events


def test_pseudonyms_are_stable_for_one_key_and_differ_for_another(events: pl.DataFrame) -> None:
    first = Pseudonymiser(KEY_A).apply(events)
    again = Pseudonymiser(KEY_A).apply(events)
    other = Pseudonymiser(KEY_B).apply(events)
    assert first.get_column("user_id").equals(again.get_column("user_id"))
    # Same users, same grouping, no raw id left, and no pseudonym shared between the two keys.
    assert first.get_column("user_id").n_unique() == events.get_column("user_id").n_unique() == 8442
    assert set(first.get_column("user_id")).isdisjoint(set(events.get_column("user_id")))
    assert set(first.get_column("user_id")).isdisjoint(set(other.get_column("user_id")))
    assert first.get_column("user_id").str.contains(r"^u_[0-9a-f]{16}$").all()
    assert first.drop("user_id").equals(events.drop("user_id"))


def test_pseudonym_is_the_truncated_hmac_sha256() -> None:
    # HMAC-SHA256(key="a"*32, "A1B2C3") computed independently with `openssl dgst -sha256 -hmac`.
    assert Pseudonymiser(KEY_A, prefix="p-", hex_chars=12).pseudonym("A1B2C3") == "p-e7894caa1d67"


def test_missing_key_fails_with_a_message_that_says_how_to_set_it() -> None:
    with pytest.raises(PrivacyError, match="export LONGTAIL_PSEUDONYM_KEY="):
        pseudonymiser_from_config(PrivacyConfig(enabled=True), environ={})
    with pytest.raises(PrivacyError, match="at least 16"):
        pseudonymiser_from_config(PrivacyConfig(enabled=True), environ={"LONGTAIL_PSEUDONYM_KEY": "short"})


def test_key_comes_from_the_named_environment_variable_or_the_config() -> None:
    from_env = pseudonymiser_from_config(PrivacyConfig(key_env="SHOP_KEY"), environ={"SHOP_KEY": "k" * 20})
    from_config = pseudonymiser_from_config(PrivacyConfig(key="k" * 20), environ={})
    assert from_env.pseudonym("42") == from_config.pseudonym("42")
    assert "k" * 20 not in repr(from_env)


def test_a_key_in_the_config_is_never_saved_next_to_artifacts(tmp_path: Path) -> None:
    config = LongtailConfig.model_validate({"privacy": {"enabled": True, "key": "s3cret-s3cret-s3cret"}})
    written = save_config(config, tmp_path).read_text(encoding="utf-8")
    assert "s3cret" not in written
    assert "key_env: LONGTAIL_PSEUDONYM_KEY" in written


def test_apply_privacy_pseudonymises_every_table_and_scrubs_configured_text(events: pl.DataFrame) -> None:
    sample = events.head(3).with_columns(pl.Series("query", ["call me 13812345678", None, "usb hub"]), pl.Series("text", ["mail a@b.com", "ok", None]))
    users = pl.DataFrame({"user_id": sample.get_column("user_id").unique().to_list()})
    config = PrivacyConfig(enabled=True)
    out = apply_privacy({"events": sample, "users": users}, config, environ={"LONGTAIL_PSEUDONYM_KEY": "k" * 32})
    expected_ids = [Pseudonymiser(b"k" * 32).pseudonym(u) for u in sample.get_column("user_id")]
    assert out["events"].get_column("user_id").to_list() == expected_ids
    assert set(out["users"].get_column("user_id")) == set(expected_ids)
    assert out["events"].get_column("query").to_list() == ["call me [PHONE]", None, "usb hub"]
    assert out["events"].get_column("text").to_list() == ["mail [EMAIL]", "ok", None]
    assert apply_privacy({"events": sample}, PrivacyConfig())["events"].equals(sample)  # disabled: untouched


def test_erasure_removes_a_user_by_raw_or_pseudonymised_id_and_counts_per_table(events: pl.DataFrame) -> None:
    pseudonymiser = Pseudonymiser(KEY_A)
    user = events.get_column("user_id")[0]
    raw_rows = events.filter(pl.col("user_id") == user).height
    tables = {
        "events": pseudonymiser.apply(events),
        "raw_events": events,
        "users": pl.DataFrame({"user_id": [pseudonymiser.pseudonym(user), "u_other"]}),
        "items": pl.DataFrame({"item_id": ["1"]}),
    }
    erased = erase_user(tables, user, pseudonymiser)
    assert erased.removed == {"events": raw_rows, "raw_events": raw_rows, "users": 1, "items": 0}
    assert erased.total_removed == 2 * raw_rows + 1
    for name, table in erased.tables.items():
        if "user_id" in table.columns:
            assert not table.get_column("user_id").is_in([user, pseudonymiser.pseudonym(user)]).any(), name
    assert erased.tables["events"].height == events.height - raw_rows
    # By pseudonym alone (what the serving layer sees after ingestion).
    assert erase_user(tables, pseudonymiser.pseudonym(user)).removed["events"] == raw_rows
