"""User profiles on the demo data: batch build vs one-event update cost, served update latency, DP affinity accuracy vs ε."""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.config import LongtailConfig, ProfileConfig
from longtail.privacy.dp import category_domain
from longtail.profile.profiles import UserProfile, build_profile, dp_category_shares, profile_items, summarise, update
from longtail.search.engine import SearchEngine
from longtail.serve.events import StoredEvent
from longtail.serve.loading import open_served
from longtail.serve.model_services import ModelServices

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
RESULTS = Path(__file__).resolve().parent / "results"
EPSILONS = (0.5, 1.0, 2.0, 4.0, 8.0)


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds."""
    return {"p50_ms": round(float(np.percentile(seconds, 50)) * 1e3, 3), "p99_ms": round(float(np.percentile(seconds, 99)) * 1e3, 3)}


def dp_accuracy(items: pl.DataFrame, events: pl.DataFrame, users: int, seed: int) -> list[dict[str, float]]:
    """Mean L1 distance between released and exact category affinities, and how often the top category survives, per ε."""
    lookup, domain, at = profile_items(items), category_domain(items), events["timestamp"].max()
    active = events.group_by("user_id").len().sort(["len", "user_id"], descending=[True, False]).head(users)["user_id"].to_list()
    profiles = [build_profile(user, events.filter(pl.col("user_id") == user), lookup) for user in active]
    everything = ProfileConfig(top=len(domain))
    exact = []
    for profile in profiles:
        shares = {a.name: a.affinity for a in summarise(profile, everything).categories}
        exact.append(np.array([shares.get(name, 0.0) for name in domain]))
    rows = []
    for epsilon in EPSILONS:
        errors, kept = [], []
        for n, (profile, truth) in enumerate(zip(profiles, exact, strict=True)):
            released = dp_category_shares(profile, domain, epsilon, at, seed + n)  # type: ignore[arg-type]
            noisy = np.array([released[name] for name in domain])
            errors.append(float(np.abs(noisy - truth).sum()))
            kept.append(int(np.argmax(noisy)) == int(np.argmax(truth)))
        rows.append({"epsilon": epsilon, "mean_l1_error": round(float(np.mean(errors)), 4), "top_category_kept": round(float(np.mean(kept)), 4)})
    return rows


def update_costs(items: pl.DataFrame, events: pl.DataFrame, vectors: np.ndarray, users: int) -> dict[str, object]:
    """Per active user: one batch build over all their events vs folding the same events one at a time."""
    lookup = profile_items(items, vectors)
    active = events.group_by("user_id").len().sort(["len", "user_id"], descending=[True, False]).head(users)["user_id"].to_list()
    batch, folds, per_event = [], [], []
    for user in active:
        mine = events.filter(pl.col("user_id") == user).sort("timestamp")
        started = time.perf_counter()
        build_profile(user, mine, lookup)
        batch.append(time.perf_counter() - started)
        profile, started = UserProfile(user), time.perf_counter()
        for row in mine.iter_rows(named=True):
            one = time.perf_counter()
            profile = update(profile, StoredEvent(user, row["item_id"], row["event_type"], row["timestamp"]), lookup.get(row["item_id"]))
            per_event.append(time.perf_counter() - one)
        folds.append(time.perf_counter() - started)
    return {
        "users": len(active),
        "events": int(events.filter(pl.col("user_id").is_in(active)).height),
        "batch_build": percentiles(batch),
        "fold_all_events": percentiles(folds),
        "update_one_event": percentiles(per_event),
    }


def served_latency(items: pl.DataFrame, events: pl.DataFrame, vectors: np.ndarray, requests: int) -> dict[str, object]:
    """In-process model services over the slice: store append + profile fold (recommendations no longer come from profiles)."""
    config = LongtailConfig.model_validate({"encode": {"encoder": "minilm-int8"}})
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        items.write_parquet(data / "items.parquet")
        events.write_parquet(data / "events.parquet")
        SearchEngine.build(items, config, events=events, directory=data / "index", vectors=vectors)
        served = open_served(data, config, data / "index")
        services = served.services
        assert isinstance(services, ModelServices)
        users = events["user_id"].unique(maintain_order=True).head(requests).to_list()
        item_ids = items["item_id"].to_list()
        at = events["timestamp"].max()
        observe = []
        for n, user in enumerate(users):
            services.live_profile(user)
            event = StoredEvent(user, item_ids[(7 * n) % len(item_ids)], "view", at + timedelta(minutes=n))  # type: ignore[operator]
            started = time.perf_counter()
            event_id = served.store.append([event])[0]
            services.observe([replace(event, id=event_id)])
            observe.append(time.perf_counter() - started)
        served.close()
    return {"items": items.height, "requests": len(users), "post_event_and_fold": percentiles(observe)}


def main() -> None:
    """Write benchmarks/results/profiles.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=500, help="most active demo users to profile")
    args = parser.parse_args()
    items = pl.read_csv(DEMO / "items.csv", schema_overrides={"price": pl.Float64})
    events = pl.read_parquet(DEMO / "events.parquet")
    started = time.perf_counter()
    active = events.group_by("user_id").len().sort(["len", "user_id"], descending=[True, False]).head(args.users)["user_id"]
    slice_events = events.filter(pl.col("user_id").is_in(active.implode()))
    slice_items = items.filter(pl.col("item_id").is_in(slice_events["item_id"].unique().implode()))
    from longtail.core.config import EncodeConfig
    from longtail.encode.factory import build_encoder
    from longtail.encode.item_text import item_texts

    vectors = build_encoder(EncodeConfig(encoder="minilm-int8", cache_dir=None)).encode(item_texts(slice_items))
    encode_seconds = time.perf_counter() - started
    result = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine()},
        "data": {"users": args.users, "events": slice_events.height, "items": slice_items.height, "encode_seconds": round(encode_seconds, 1)},
        "update_costs": update_costs(slice_items, slice_events, vectors, args.users),
        "served": served_latency(slice_items, slice_events, vectors, 200),
        "dp_category_affinities": dp_accuracy(items, events, 1000, seed=42),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "profiles.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
