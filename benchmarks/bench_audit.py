"""Audit throughput and peak memory on synthetic events (10M by default), against plain loading in the same run."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig
from longtail.data.loaders import load_table
from longtail.data.schema import EVENTS
from longtail.pipeline.audit_step import run_audit

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = [
    "red",
    "blue",
    "steel",
    "glass",
    "cotton",
    "wireless",
    "mini",
    "pro",
    "max",
    "kit",
    "pack",
    "set",
    "bottle",
    "lamp",
    "shoe",
    "bag",
    "保温杯",
    "耳机",
    "手机壳",
    "充电器",
]


def synthetic_items(count: int, rng: np.random.Generator) -> pl.DataFrame:
    """A catalogue with long-tailed categories, lognormal prices and a few defects."""
    categories = [f"Dept {i % 20} > Cat {i}" for i in range(400)]
    category = rng.zipf(1.3, count) % len(categories)
    words = rng.integers(0, len(WORDS), (count, 5))
    titles = [" ".join(WORDS[w] for w in row) + f" #{i}" for i, row in enumerate(words)]
    price = np.round(rng.lognormal(3, 0.8, count), 2)
    price[rng.random(count) < 0.001] = -1.0
    return pl.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(count)],
            "title": titles,
            "category": [categories[c] for c in category],
            "price": price,
            "currency": "USD",
        }
    )


def synthetic_events(count: int, items: int, users: int, rng: np.random.Generator) -> pl.DataFrame:
    """Zipf-popular items, uniform users, 90 days of timestamps, 10% searches with queries, some defects."""
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    item = (rng.zipf(1.2, count) - 1) % items
    # The mix the benchmark was written for; named, so event types added later (returns) do not shift it.
    mix = {"search": 0.1, "view": 0.5, "click": 0.2, "add_to_cart": 0.08, "purchase": 0.04, "rating": 0.05, "review": 0.03}
    types = rng.choice(len(mix), count, p=list(mix.values()))
    seconds = np.sort(rng.uniform(0, 90 * 86400, count))
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(rng.integers(0, users, count)).cast(pl.String),
            "item_id": pl.Series(item).cast(pl.String),
            "event_type": pl.Series(np.array(list(mix))[types]),
            "timestamp": pl.Series((start + seconds) * 1e6).cast(pl.Int64).cast(pl.Datetime("us", "UTC")),
            "rating": pl.Series(rng.integers(0, 7, count).astype(float)),
        }
    )
    return frame.with_columns(
        (pl.lit("u") + pl.col("user_id")).alias("user_id"),
        pl.when(pl.col("event_type") == "search").then(None).otherwise(pl.lit("i") + pl.col("item_id")).alias("item_id"),
        pl.when(pl.col("event_type") == "search").then(pl.lit("wireless ") + pl.col("item_id")).alias("query"),
        pl.when(pl.col("event_type") == "rating").then(pl.col("rating")).alias("rating"),
        (pl.lit("s") + pl.col("user_id") + pl.lit("-") + (pl.col("timestamp").dt.ordinal_day()).cast(pl.String)).alias("session_id"),
    )


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        synthetic_items(args.items, rng).write_parquet(work / "items.parquet")
        synthetic_events(args.events, args.items, args.users, rng).write_parquet(work / "events.parquet")
        generated_rss = peak_rss_mb()

        started = time.perf_counter()
        loaded = load_table(work / "events.parquet", EVENTS)
        load_seconds = time.perf_counter() - started
        del loaded

        steps: dict[str, float] = {}
        last = [time.perf_counter(), "start"]

        def record(step: str) -> None:
            now = time.perf_counter()
            steps[last[1]] = round(now - last[0], 3)
            last[0], last[1] = now, step

        config = LongtailConfig.model_validate({"quality": {"reference_time": "2026-04-01T00:00:00+00:00"}})
        started = time.perf_counter()
        result = run_audit(work / "items.parquet", work / "events.parquet", work / "out", config, record)
        audit_seconds = time.perf_counter() - started
        record("end")
        steps.pop("start", None)

    events = result.report["tables"]["events"]
    output = {
        "benchmark": "audit",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "events": args.events,
        "items": args.items,
        "users": args.users,
        "audit_seconds": round(audit_seconds, 2),
        "events_per_second": round(args.events / audit_seconds),
        "baseline_load_seconds": round(load_seconds, 2),
        "audit_to_load_ratio": round(audit_seconds / load_seconds, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "rss_after_generation_mb": round(generated_rss, 1),
        "step_seconds": steps,
        "events_kept": events["kept_rows"],
        "events_quarantined": events["quarantined_rows"],
        "events_by_reason": events["by_reason"],
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / "audit.json"
    target.write_text(json.dumps(output, indent=2), encoding="utf-8")
    print(json.dumps(output, indent=2))


if __name__ == "__main__":
    main()
