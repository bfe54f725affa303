"""Replay: post each test user's history to a running API, ask it for recommendations, and score the answers with the
offline metrics, so what users get can be compared with what `longtail evaluate --model` measured on the same users."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl

from longtail.core.errors import LongtailError
from longtail.evaluate.metrics import ranking_metrics
from longtail.pipeline.model_folder import HISTORY_FILE, folder_split, sample_test_users

REPLAY_PREFIX = "replay-"  # fresh ids: a store seeded with the same data must not hand the API the held-out item
BATCH = 1000


def _ordered_history(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Each user's interactions in the order the leave-one-out split reads them (time, then row order)."""
    history = pl.read_parquet(directory / HISTORY_FILE).with_row_index("order").sort(["user_id", "timestamp", "order"])
    by_user: dict[str, list[dict[str, Any]]] = {}
    for row in history.select("user_id", "item_id", "event_type", "timestamp").iter_rows(named=True):
        by_user.setdefault(row["user_id"], []).append(row)
    return by_user


def _checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise LongtailError(f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json()


def replay(
    client: httpx.Client, model_dir: str | Path, users: int | None, seed: int, k: int = 10, advance: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    """Post the sampled test users' histories (all but their last item) under fresh ids, ask for k recommendations
    each and score them: per-user ranks of the held-out item through `ranking_metrics`, the offline metrics code."""
    directory = Path(model_dir)
    split = folder_split(directory)
    chosen = sample_test_users(split, users, seed)
    by_user = _ordered_history(directory)
    beyond = split.n_items + 1  # a held-out item missing from the answer ranks below every listed item
    ranks: list[np.ndarray] = []
    sources: dict[str, int] = {}
    for user in chosen.tolist():
        user_id = split.user_ids[user]
        served_id = f"{REPLAY_PREFIX}{user_id}"
        events = [
            {"user_id": served_id, "item_id": row["item_id"], "event_type": row["event_type"], "timestamp": row["timestamp"].isoformat()}
            for row in by_user[user_id][:-1]
        ]
        for start in range(0, len(events), BATCH):
            _checked(client.post("/events", json={"events": events[start : start + BATCH]}))
        answer = _checked(client.get(f"/users/{served_id}/recommendations", params={"k": k}))
        listed = [hit["item_id"] for hit in answer["items"]]
        target = split.item_ids[int(split.test[user][0])]
        ranks.append(np.array([listed.index(target) + 1 if target in listed else beyond]))
        sources[answer["source"]] = sources.get(answer["source"], 0) + 1
        advance()
    per_user = ranking_metrics(ranks, [k])
    return {"users": len(chosen), "metrics": {name: float(np.nanmean(per_user[name])) for name in (f"NDCG@{k}", f"HR@{k}")}, "sources": sources}
