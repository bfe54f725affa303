"""Every report is written as a JSON file and an HTML page from one writer."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import jinja2
import pytest

from longtail.core.artifacts import load_json
from longtail.reporting.writers import write_report_pair


def test_the_writer_writes_json_and_html(tmp_path: Path) -> None:
    heads = {
        "category": {
            "classes": ["a"],
            "models": {
                "m": {
                    "per_class": {"a": {"precision": 1.0, "recall": 0.5, "f1": 0.667, "auc": 0.75, "support": 2}},
                    "macro_f1": 0.667,
                    "accuracy": 0.5,
                    "macro_auc": 0.75,
                }
            },
            "comparisons": {},
        }
    }
    json_path, html_path = write_report_pair(
        tmp_path / "deep" / "r.json",
        tmp_path / "deep" / "r.html",
        {"made": date(2025, 1, 2), "score": 0.5},
        "classification.html",
        {"title": "tiny report", "heads": heads, "notes": ["a note"], "figures": {"category": "<svg/>"}},
    )
    assert load_json(json_path) == {"made": "2025-01-02", "score": 0.5}
    page = html_path.read_text(encoding="utf-8")
    assert "Classifier report: tiny report" in page and "<p>a note</p>" in page and "<td>0.7500</td>" in page


def test_a_template_error_writes_neither_file(tmp_path: Path) -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        write_report_pair(tmp_path / "r.json", tmp_path / "r.html", {}, "no-such.html", {})
    assert list(tmp_path.iterdir()) == []
