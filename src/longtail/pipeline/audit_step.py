"""The audit step: load items and events, audit and clean them, write every artifact."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import psutil

from longtail.balance.imbalance import for_json, imbalance_charts, imbalance_report
from longtail.core.config import LongtailConfig
from longtail.core.errors import InsufficientMemoryError
from longtail.data.loaders import check_parse_rates, estimated_rows, load_table, to_canonical
from longtail.data.schema import EVENTS, ITEMS, JUDGMENTS, USERS, TableSpec
from longtail.pipeline.executors import table_mapper
from longtail.privacy.ingest import apply_privacy
from longtail.quality.audit import AUDIT_STEPS, AuditResult, StepCallback, audit
from longtail.quality.report import write_audit

RUN_AUDIT_STEPS = AUDIT_STEPS + 4


def add_imbalance(result: AuditResult, config: LongtailConfig) -> AuditResult:
    """Add the imbalance statistics of the kept tables to the report (section `imbalance`) and its charts."""
    segments = config.recommend
    report = imbalance_report(result.tables["items"].kept, result.tables["events"].kept, segments.head_item_share, segments.tail_interaction_share)
    result.report["imbalance"] = for_json(report)
    result.extra_charts.extend(imbalance_charts(report))
    return result


def _private(
    items: pl.DataFrame, events: pl.DataFrame | None, users: pl.DataFrame | None, config: LongtailConfig
) -> tuple[pl.DataFrame, pl.DataFrame | None, pl.DataFrame | None]:
    """The tables after the optional privacy step, so raw user ids and PII never reach the audit's artifacts."""
    tables = {"items": items} | {name: table for name, table in (("events", events), ("users", users)) if table is not None}
    private = apply_privacy(tables, config.privacy)
    return private["items"], private.get("events"), private.get("users")


def check_fits_in_memory(events_path: str | Path, config: LongtailConfig) -> None:
    """Refuse, before loading anything, an in-process audit whose events would need more memory than is available."""
    pipeline = config.pipeline
    rows = estimated_rows(events_path)
    needed = rows * pipeline.in_process_bytes_per_event
    available = pipeline.in_process_memory_gb * 2**30 if pipeline.in_process_memory_gb else psutil.virtual_memory().available
    if needed > available:
        raise InsufficientMemoryError(
            f"{events_path}: ~{rows:,} events need ~{needed / 2**30:.1f} GB to audit in-process (~{pipeline.in_process_bytes_per_event} bytes "
            f"per event) but {available / 2**30:.1f} GB is available; run it on a cluster (pipeline.executor: spark, "
            "longtail audit --executor spark --master spark://...) or split the input"
        )


def run_audit(
    items_path: str | Path,
    events_path: str | Path,
    out_dir: str | Path,
    config: LongtailConfig,
    on_step: StepCallback | None = None,
    users_path: str | Path | None = None,
    judgments_path: str | Path | None = None,
) -> AuditResult:
    """Read every file (failing before anything is written), audit them and write the results to out_dir.

    With `pipeline.executor: spark` the events (a file or a folder of part files) are read, audited and
    written by the cluster's executors, and the driver never holds them (see pipeline/spark_audit.py).
    """
    step = on_step or (lambda _name: None)
    on_cluster = config.pipeline.executor == "spark"
    if not on_cluster:
        check_fits_in_memory(events_path, config)
    loaded = _load_inputs([(ITEMS, items_path), (EVENTS, None if on_cluster else events_path), (USERS, users_path), (JUDGMENTS, judgments_path)], config, step)
    items, users, judgments = loaded["items"], loaded.get("users"), loaded.get("judgments")
    if on_cluster:
        from longtail.pipeline.spark_audit import audit_on_cluster

        items, _, users = _private(items, None, users, config)
        return audit_on_cluster(items, events_path, out_dir, config, step, users, judgments)
    items, events, users = _private(items, loaded["events"], users, config)
    assert events is not None  # given, so returned
    with table_mapper(config.pipeline) as mapper:
        result = audit(items, events, config, step, users, judgments, mapper)
    step("imbalance")
    add_imbalance(result, config)
    step("write artifacts")
    write_audit(result, out_dir, config)
    return result


def _load_inputs(paths: list[tuple[TableSpec, str | Path | None]], config: LongtailConfig, step: StepCallback) -> dict[str, pl.DataFrame]:
    """Load every given file as its canonical table, failing on a column that mostly does not parse."""
    loaded = {}
    columns = config.data.columns
    for spec, path in paths:
        if path:
            step(f"load {spec.name}")
            loaded[spec.name] = load_table(path, spec, getattr(columns, spec.name), config.data.csv_separator, config.data)
            # A column that mostly fails to parse is a format problem (say, dates as 12/1/10 8:26), not dirt to quarantine.
            check_parse_rates(loaded[spec.name], spec, path, config.quality.max_unparseable_share)
    return loaded


def run_audit_on_tables(
    items: pl.DataFrame, events: pl.DataFrame, out_dir: str | Path, config: LongtailConfig, on_step: StepCallback | None = None
) -> AuditResult:
    """Audit canonical frames already in memory (e.g. from a dataset adapter)."""
    items, private_events, _ = _private(to_canonical(items, ITEMS, "<items>"), to_canonical(events, EVENTS, "<events>"), None, config)
    assert private_events is not None  # given, so returned
    with table_mapper(config.pipeline) as mapper:
        result = audit(items, private_events, config, on_step, map_table=mapper)
    add_imbalance(result, config)
    write_audit(result, out_dir, config)
    return result
