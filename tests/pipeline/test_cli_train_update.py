"""`longtail train --hold-back` then `longtail update` on real users' files: the decision is printed and written."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.data.adapters import load_dataset


@pytest.mark.slow
def test_train_then_update_from_files(tmp_path, datasets_root) -> None:
    data = load_dataset("scientific", datasets_root)
    users = data.events["user_id"].unique().sort().head(500)
    data.events.filter(pl.col("user_id").is_in(users.implode())).write_parquet(tmp_path / "events.parquet")
    data.items.write_parquet(tmp_path / "items.parquet")
    config = tmp_path / "config.yaml"
    config.write_text(
        "recommend:\n  bootstrap_samples: 100\n  sequential: {hidden: 16, blocks: 1, max_len: 10, epochs: 4, threads: 1}\n"
        "incremental: {epochs: 2, tolerance: 1.0}\n"
    )
    runner = CliRunner()
    trained = runner.invoke(
        app,
        [
            "train",
            "--items",
            str(tmp_path / "items.parquet"),
            "--events",
            str(tmp_path / "events.parquet"),
            "--hold-back",
            "2",
            "--held-back-out",
            str(tmp_path / "new.parquet"),
            "--out",
            str(tmp_path / "model"),
            "--config",
            str(config),
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert pl.read_parquet(tmp_path / "new.parquet").height == 1000 and "model folder" in trained.output
    updated = runner.invoke(
        app,
        [
            "update",
            "--model",
            str(tmp_path / "model"),
            "--events",
            str(tmp_path / "new.parquet"),
            "--items",
            str(tmp_path / "items.parquet"),
            "--config",
            str(config),
        ],
    )
    assert updated.exit_code == 0, updated.output
    decision = json.loads((tmp_path / "model" / "update.json").read_text())
    # a tolerance of 1.0 accepts any update: the command must then have swapped in the new model
    assert decision["decision"] == "replaced" and decision["evaluated_users"] == 500 and "replaced" in updated.output
    missing = runner.invoke(
        app, ["update", "--model", str(tmp_path / "nothing"), "--events", str(tmp_path / "new.parquet"), "--items", str(tmp_path / "items.parquet")]
    )
    assert missing.exit_code == 2 and "train a model folder first" in missing.output
