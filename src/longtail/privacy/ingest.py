"""The ingestion privacy step: pseudonymise user ids and scrub PII from configured text columns."""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from longtail.core.config import PrivacyConfig
from longtail.privacy.pii import PII_KINDS, scrub_column
from longtail.privacy.pseudonym import pseudonymiser_from_config


def scrub_tables(tables: Mapping[str, pl.DataFrame], columns: Mapping[str, list[str]]) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Tables with the listed text columns scrubbed, and replacement counts per PII kind over all of them."""
    totals = dict.fromkeys(PII_KINDS, 0)
    scrubbed = dict(tables)
    for name, names in columns.items():
        if name not in scrubbed:
            continue
        for column in names:
            scrubbed[name], counts = scrub_column(scrubbed[name], column)
            for kind, count in counts.items():
                totals[kind] += count
    return scrubbed, totals


def apply_privacy(tables: Mapping[str, pl.DataFrame], config: PrivacyConfig, environ: Mapping[str, str] | None = None) -> dict[str, pl.DataFrame]:
    """Tables ready for the audit: user ids pseudonymised in every table that has them and PII scrubbed, as configured."""
    result = dict(tables)
    if not config.enabled:
        return result
    if config.pseudonymise:
        # Resolved first so a missing key fails before any work is done.
        pseudonymiser = pseudonymiser_from_config(config, environ)
        result = {name: pseudonymiser.apply(table) for name, table in result.items()}
    if config.scrub_pii:
        result, _ = scrub_tables(result, config.scrub_columns)
    return result
