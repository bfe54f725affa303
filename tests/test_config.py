"""The config: defaults, unknown keys rejected by name, round trip through YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from longtail.core.config import LongtailConfig, load_config, save_config
from longtail.core.errors import ConfigError


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.seed == 42
    assert config.quality.max_rating == 5.0


def test_unknown_key_is_rejected_by_its_dotted_name(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("quality:\n  near_dupe_threshold: 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert "quality.near_dupe_threshold: unknown key" in message


def test_out_of_range_value_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("quality:\n  near_duplicate_threshold: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="quality.near_duplicate_threshold"):
        load_config(path)


def test_malformed_yaml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("quality: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")


def test_saved_config_loads_back_equal(tmp_path: Path) -> None:
    config = LongtailConfig.model_validate({"seed": 7, "quality": {"bot_window_seconds": 60}, "data": {"columns": {"items": {"sku": "item_id"}}}})
    written = save_config(config, tmp_path)
    assert load_config(written) == config
