"""`longtail intent` end to end on real users: the model beats both baselines on held-out users, per class."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.models.intent import IntentModel


@pytest.mark.slow
def test_intent_command_beats_the_baselines_on_held_out_users(tmp_path, datasets_root) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("intent:\n  threads: 1\n  bootstrap_samples: 200\n")
    out = tmp_path / "intent"
    result = CliRunner().invoke(
        app, ["intent", "--dataset", "scientific", "--max-users", "2500", "--out", str(out), "--config", str(config), "--datasets-root", str(datasets_root)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "intent.json").read_text())
    intent = report["heads"]["intent"]
    models = intent["models"]
    assert models["model"]["macro_f1"] > models["latest step"]["macro_f1"] > models["majority"]["macro_f1"]
    assert intent["comparisons"]["majority"]["low"] > 0
    assert models["model"]["macro_auc"] > 0.65 and models["majority"]["macro_auc"] == 0.5
    assert set(models["model"]["per_class"]) == {"browse", "compare", "buy"}
    assert "next_action" not in report["heads"] and any("same action type" in note for note in report["notes"])
    assert report["users"]["test"] == 500 and report["users"]["train"] + report["users"]["valid"] == 2000
    html = (out / "intent.html").read_text()
    assert "<svg" in html and "Macro-F1 difference" in html and (out / "config.yaml").is_file()
    assert IntentModel.load(out / "intent_model.json").evaluable("intent")
    assert "held-out users" in result.output
