"""The recommendation report: JSON for machines, one self-contained HTML page with charts for people."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from longtail.core.config import RecommendConfig
from longtail.evaluate.harness import Evaluation
from longtail.evaluate.significance import bootstrap_ci, paired_bootstrap
from longtail.reporting import charts
from longtail.reporting.writers import write_report_pair

METRIC_NAMES = ("HR@5", "HR@10", "NDCG@10", "HR@20", "NDCG@20", "MRR", "coverage@10", "gini@10", "novelty@10", "tail_exposure@10")
SEGMENT_NAMES = ("head", "torso", "tail", "unseen", "cold", "active")
COMPARED = (("all", "HR@10"), ("all", "NDCG@10"), ("tail", "NDCG@10"))


def comparisons(evaluations: dict[str, Evaluation], best: str, config: RecommendConfig) -> dict[str, dict[str, dict]]:
    """Paired bootstrap of `best` minus every other model, for HR@10, NDCG@10 and tail NDCG@10."""
    result = {}
    for other, evaluation in evaluations.items():
        if other == best or len(evaluation.per_user["all"]["MRR"]) != len(evaluations[best].per_user["all"]["MRR"]):
            continue
        result[other] = {
            f"{segment}/{metric}": paired_bootstrap(evaluations[best].per_user[segment][metric], evaluation.per_user[segment][metric], config.bootstrap_samples)
            for segment, metric in COMPARED
        }
    return result


def _charts(runs: list[dict]) -> list[tuple[str, str]]:
    scored = [r for r in runs if r.get("segments")]
    figures = []
    if scored:
        names = [r["model"] for r in scored]
        figures.append(("NDCG@10 by model", charts.bar_chart(names, [r["metrics"]["NDCG@10"] for r in scored], "NDCG@10 (test)")))
        tail = [r["segments"].get("tail", {}).get("NDCG@10", 0.0) for r in scored]
        figures.append(("Tail-item NDCG@10 by model", charts.bar_chart(names, tail, "NDCG@10 on tail targets")))
        figures.append(
            ("Tail exposure in the top 10", charts.bar_chart(names, [r["metrics"].get("tail_exposure@10", 0.0) for r in scored], "share of top-10 slots"))
        )
    for run in runs:
        if "curve" in run:
            weights = [p["weight"] for p in run["curve"]]
            series = {name: [p[name] for p in run["curve"]] for name in ("NDCG@10", "tail_NDCG@10", "head_NDCG@10")}
            figures.append(
                (f"Long-tail knob ({run['model']}): accuracy", charts.curve_chart(weights, series, "accuracy vs knob", "popularity-penalty weight", "NDCG@10"))
            )
            exposure = {name: [p[name] for p in run["curve"]] for name in ("tail_exposure@10", "coverage@10")}
            figures.append(
                (f"Long-tail knob ({run['model']}): exposure", charts.curve_chart(weights, exposure, "exposure vs knob", "popularity-penalty weight", "share"))
            )
    return figures


def report_context(
    title: str,
    runs: list[dict],
    evaluations: dict[str, Evaluation],
    config: RecommendConfig,
    protocol: str = "leave-one-out",
    compared: dict | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """What `evaluation.html` shows: metric and segment tables, bootstrap intervals and comparisons, charts.

    `compared` replaces the default comparison (the run carrying `compared_with` minus every other) with
    a prepared one: a heading, rows of paired-bootstrap results per model and metric, the metric names.
    """
    intervals = {}
    for name, evaluation in evaluations.items():
        ci = bootstrap_ci(evaluation.per_user["all"]["NDCG@10"], config.bootstrap_samples)
        intervals[name] = f"[{ci['low']:.4f}, {ci['high']:.4f}]"
    compared = compared or next(
        (
            {
                "heading": f"Paired bootstrap: {r['model']} minus each other model (95% CI over users)",
                "rows": r["compared_with"],
                "metrics": [f"{s}/{m}" for s, m in COMPARED],
            }
            for r in runs
            if r.get("compared_with")
        ),
        None,
    )
    return dict(
        title=title,
        runs=runs,
        config=config,
        protocol=protocol,
        metric_names=METRIC_NAMES,
        segment_names=SEGMENT_NAMES,
        intervals=intervals,
        compared=compared,
        charts=_charts(runs),
        nan=math.nan,
        notes=notes or [],
    )


def write_report(runs: list[dict], evaluations: dict[str, Evaluation], path: str | Path, title: str, config: RecommendConfig | None = None) -> Path:
    """Write the HTML report and, next to it, the runs as JSON."""
    path = Path(path)
    write_report_pair(path.with_suffix(".json"), path, runs, "evaluation.html", report_context(title, runs, evaluations, config or RecommendConfig()))
    return path
