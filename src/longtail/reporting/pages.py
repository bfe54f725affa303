"""The shared page layout: every HTML report is a template here that extends `base.html`."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape


@cache
def report_environment() -> Environment:
    """The Jinja environment over `reporting/templates`, autoescaping HTML."""
    return Environment(loader=PackageLoader("longtail.reporting", "templates"), autoescape=select_autoescape())


def render_page(template: str, **context: Any) -> str:
    """Render one report template (a file in `reporting/templates`) with `context`."""
    return report_environment().get_template(template).render(**context)
