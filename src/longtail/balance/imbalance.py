"""Imbalance statistics of a catalogue and its events: popularity skew, category, event-type and user-activity balance."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig, save_config
from longtail.data.segments import HEAD, TAIL, TORSO, item_segments
from longtail.reporting import charts
from longtail.reporting.writers import write_report_pair

QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.99)
LORENZ_POINTS = 50


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of non-negative counts: 0 when all are equal, towards 1 when one holds everything."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    total = values.sum()
    if values.size == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, values.size + 1)
    return float((2 * ranks - values.size - 1) @ values / (values.size * total))


def lorenz_curve(counts: np.ndarray, points: int = LORENZ_POINTS) -> dict[str, list[float]]:
    """Share of interactions held by the least popular x share of items, at `points` evenly spaced x."""
    values = np.sort(np.asarray(counts, dtype=np.float64))
    cumulative = np.concatenate([[0.0], np.cumsum(values)]) / max(values.sum(), 1.0)
    x = np.linspace(0.0, 1.0, points + 1)
    y = np.interp(x * values.size, np.arange(values.size + 1), cumulative)
    return {"item_share": [round(float(v), 4) for v in x], "interaction_share": [round(float(v), 4) for v in y]}


def item_interaction_counts(items: pl.DataFrame | None, events: pl.DataFrame) -> pl.DataFrame:
    """`item_id`, `interactions` for every catalogue item (zero when never interacted with) plus items only seen in events."""
    counts = events.drop_nulls("item_id").group_by("item_id").agg(pl.len().cast(pl.Int64).alias("interactions"))
    if items is None:
        return counts.sort("item_id")
    catalogue = items.select("item_id").unique()
    return catalogue.join(counts, on="item_id", how="full", coalesce=True).fill_null(0).sort("item_id")


def popularity_skew(counts: np.ndarray, head_item_share: float = 0.2, tail_interaction_share: float = 0.2) -> dict[str, Any]:
    """Gini of interactions per item and the head/torso/tail shares of items and interactions (the evaluation's buckets)."""
    counts = np.asarray(counts, dtype=np.int64)
    labels = item_segments(counts, head_item_share, tail_interaction_share)
    total = max(int(counts.sum()), 1)
    segments = {
        segment: {
            "items": int((labels == segment).sum()),
            "item_share": round(float((labels == segment).mean()), 4) if counts.size else 0.0,
            "interactions": int(counts[labels == segment].sum()),
            "interaction_share": round(float(counts[labels == segment].sum() / total), 4),
        }
        for segment in (HEAD, TORSO, TAIL)
    }
    return {
        "items": int(counts.size),
        "interactions": int(counts.sum()),
        "gini": round(gini(counts), 4),
        "items_without_interactions": int((counts == 0).sum()),
        "segments": segments,
        "lorenz": lorenz_curve(counts),
    }


def label_balance(labels: pl.Series) -> dict[str, Any]:
    """Rows per label (largest first), each label's share, and the imbalance ratio largest/smallest; nulls counted apart."""
    present = labels.drop_nulls()
    counts = present.value_counts(name="rows").sort(["rows", present.name], descending=[True, False])
    rows = dict(zip(counts[present.name].cast(pl.String).to_list(), counts["rows"].to_list(), strict=True))
    largest, smallest = (max(rows.values()), min(rows.values())) if rows else (0, 0)
    return {
        "labels": len(rows),
        "rows": rows,
        "shares": {label: round(count / max(present.len(), 1), 4) for label, count in rows.items()},
        "largest": largest,
        "smallest": smallest,
        "imbalance_ratio": round(largest / smallest, 2) if smallest else None,
        "missing": int(labels.null_count()),
    }


def user_activity_skew(events: pl.DataFrame) -> dict[str, Any]:
    """Gini and quantiles of events per user."""
    per_user = events.drop_nulls("user_id").group_by("user_id").len()["len"].to_numpy()
    if per_user.size == 0:
        return {"users": 0}
    return {
        "users": int(per_user.size),
        "events": int(per_user.sum()),
        "gini": round(gini(per_user), 4),
        "mean": round(float(per_user.mean()), 3),
        "quantiles": {f"p{round(q * 100)}": float(np.quantile(per_user, q)) for q in QUANTILES},
        "max": int(per_user.max()),
        "events_per_user": per_user.tolist(),
    }


def imbalance_report(items: pl.DataFrame | None, events: pl.DataFrame, head_item_share: float = 0.2, tail_interaction_share: float = 0.2) -> dict[str, Any]:
    """Every imbalance statistic of a catalogue and its events, as one JSON-ready mapping."""
    counts = item_interaction_counts(items, events)["interactions"].to_numpy()
    # Without interactions (a catalogue alone) popularity buckets would be arbitrary: the section is left empty.
    popularity = popularity_skew(counts, head_item_share, tail_interaction_share) if counts.sum() else None
    categories = (
        items.select("item_id", "category")
        if items is not None and "category" in items.columns
        else pl.DataFrame(schema={"item_id": pl.String, "category": pl.String})
    )
    interacted = events.drop_nulls("item_id").select("item_id").join(categories, on="item_id", how="left")
    return {
        "popularity": popularity,
        "categories": label_balance(categories["category"]),
        "category_interactions": label_balance(interacted["category"]),
        "event_types": label_balance(events["event_type"]),
        "users": user_activity_skew(events),
    }


def for_json(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its bulky raw series (per-user counts), for JSON files and printing."""
    users = {key: value for key, value in report["users"].items() if key != "events_per_user"}
    return {**report, "users": users}


def imbalance_charts(report: dict[str, Any], top_categories: int = 25) -> list[tuple[str, str]]:
    """(title, inline SVG) charts of the report: Lorenz curve, segment shares, categories, event types, user activity."""
    figures = []
    popularity = report["popularity"]
    if popularity is not None:
        lorenz = popularity["lorenz"]
        figures.append(
            (
                f"item popularity: Lorenz curve (Gini {popularity['gini']:.3f})",
                charts.curve_chart(
                    lorenz["item_share"],
                    {"interactions": lorenz["interaction_share"], "equality": lorenz["item_share"]},
                    "share of interactions held by the least popular items",
                    "share of items",
                    "share of interactions",
                ),
            )
        )
        segments = popularity["segments"]
        figures.append(
            (
                "interactions by item segment (head / torso / tail)",
                charts.bar_chart(
                    [f"{name} ({s['items']:,} items)" for name, s in segments.items()],
                    [s["interaction_share"] for s in segments.values()],
                    "share of interactions",
                    "share",
                ),
            )
        )
    categories = report["categories"]
    if categories["labels"]:
        shown = dict(list(categories["rows"].items())[:top_categories])
        ratio = categories["imbalance_ratio"]
        figures.append(
            (
                f"items per category (top {len(shown)} of {categories['labels']}; imbalance {ratio}x)",
                charts.bar_chart([label[-40:] for label in shown], list(shown.values()), "items per category", "items", log=True),
            )
        )
    events = report["event_types"]
    if events["labels"]:
        figures.append(("events per event type", charts.bar_chart(list(events["rows"]), list(events["rows"].values()), "events per type", "events", log=True)))
    per_user = report["users"].get("events_per_user")
    if per_user:
        figures.append(
            (
                f"events per user (Gini {report['users']['gini']:.3f}; log scale)",
                charts.histogram([math.log10(v) for v in per_user], "events per user", "log10(events)"),
            )
        )
    return figures


def write_imbalance(report: dict[str, Any], out_dir: str | Path, source: str, config: LongtailConfig) -> Path:
    """Write imbalance.json, imbalance.html and the config that made them into out_dir."""
    out_dir = Path(out_dir)
    write_report_pair(
        out_dir / "imbalance.json",
        out_dir / "imbalance.html",
        {"source": source, **for_json(report)},
        "imbalance.html",
        {"report": for_json(report), "charts": imbalance_charts(report), "source": source},
    )
    save_config(config, out_dir)
    return out_dir
