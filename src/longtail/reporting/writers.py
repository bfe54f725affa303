"""The one report writer: every step's report is a JSON file for machines and an HTML page for people."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from longtail.core.artifacts import save_json
from longtail.reporting.pages import render_page


def write_report_pair(json_path: str | Path, html_path: str | Path, payload: Any, template: str, context: dict[str, Any]) -> tuple[Path, Path]:
    """Write `payload` as JSON (anything else as its str) and `template` rendered with `context` as HTML."""
    json_path, html_path = Path(json_path), Path(html_path)
    # Render before writing, so a template error leaves neither file behind.
    html = render_page(template, **context)
    for path in (json_path, html_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    save_json(json_path, payload, indent=2)
    html_path.write_text(html, encoding="utf-8")
    return json_path, html_path
