"""`longtail ablate` on a classifier: every balancing strategy scored per class on the imbalanced zh-reviews categories."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from longtail.cli import app

CONFIG = {
    "seed": 7,
    "ablation": {"task": "classification"},
    "balance": {
        "tabular": {
            "sample_fraction": 0.05,
            "bootstrap_samples": 100,
            "strategies": {"baseline": [], "random_over": [{"name": "random-over"}]},
        }
    },
}


@pytest.mark.slow
def test_ablate_classification_writes_per_class_scores_for_every_strategy(tmp_path, datasets_root) -> None:
    config = tmp_path / "ablate.yaml"
    config.write_text(yaml.safe_dump(CONFIG, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, ["ablate", str(config), "--out", str(tmp_path / "out"), "--datasets-root", str(datasets_root)])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "out" / "ablation.json").read_text(encoding="utf-8"))
    baseline, over = written["rows"]
    assert [baseline["strategy"], over["strategy"]] == ["baseline", "random_over"]
    assert len(baseline["per_class"]) == 10 and baseline["minority_class"] == "热水器"
    # the baseline keeps the 17x imbalance; random over-sampling evens every class up to the largest
    assert max(baseline["train_class_rows"].values()) / min(baseline["train_class_rows"].values()) > 10
    assert len(set(over["train_class_rows"].values())) == 1
    assert over["synthetic_rows"] == over["train_rows"] - baseline["train_rows"] > 0
    assert "vs_baseline" not in baseline
    assert over["vs_baseline"]["macro_f1"]["low"] <= over["vs_baseline"]["macro_f1"]["difference"] <= over["vs_baseline"]["macro_f1"]["high"]
    html = (tmp_path / "out" / "ablation.html").read_text(encoding="utf-8")
    assert "strategy minus the unbalanced baseline" in html and "热水器" in html and "random_over" in html
    assert (tmp_path / "out" / "config.yaml").is_file()
