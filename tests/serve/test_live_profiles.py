"""Model-backed serving through a real uvicorn server: each event updates the live profile, posted items are searchable
and similar at once, and erasure leaves no trace of a user or their pseudonym."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import psycopg
import pytest

from longtail.core.config import LongtailConfig
from longtail.privacy.pseudonym import pseudonymiser_from_config
from longtail.search.engine import RECENT_FILE, VECTORS_FILE, SearchEngine
from longtail.serve.app import create_app
from longtail.serve.loading import Served, open_served
from longtail.serve.model_services import ModelServices
from longtail.serve.schemas import ItemIn, SearchRequest

from conftest import LiveServer, fresh_postgres_dsn, make_keys, write_demo_slice

SLICE_USERS = 12
FAST = {"encode": {"encoder": "minilm-int8"}}
PSEUDONYM_KEY = "a-test-key-of-at-least-16-bytes-0123456789"


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """The first demo users' events, the items they touched, and a hybrid index over those items."""
    return write_demo_slice(tmp_path_factory.mktemp("model-slice"), demo_data, SLICE_USERS, FAST)


def copy_data(slice_dir: Path, target: Path, events: pl.DataFrame | None = None) -> Path:
    """A served directory of its own (a fresh store) over the slice's files."""
    target.mkdir(parents=True)
    shutil.copy(slice_dir / "items.csv", target / "items.csv")
    (events if events is not None else pl.read_parquet(slice_dir / "events.parquet")).write_parquet(target / "events.parquet")
    return target


class Client:
    """httpx against a live server with one key holding every scope."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"})

    def post_event(self, user: str, item: str, kind: str, at: datetime) -> None:
        response = self.http.post("/events", json={"events": [{"user_id": user, "item_id": item, "event_type": kind, "timestamp": at.isoformat()}]})
        assert response.status_code == 201, response.text

    def profile(self, user: str) -> dict[str, Any]:
        response = self.http.get(f"/users/{user}/profile")
        assert response.status_code == 200, response.text
        return response.json()

    def recommendations(self, user: str, k: int = 10) -> dict[str, Any]:
        return self.http.get(f"/users/{user}/recommendations", params={"k": k}).json()


@pytest.fixture
def served(slice_dir: Path, tmp_path: Path) -> Iterator[tuple[Served, Client]]:
    config = LongtailConfig.model_validate(FAST)
    opened = open_served(copy_data(slice_dir, tmp_path / "data"), config, slice_dir / "index")
    key = make_keys(opened.store)["admin"]
    with LiveServer(create_app(config, opened.services, opened.store)) as server:
        client = Client(server.url, key)
        yield opened, client
        client.http.close()
    opened.close()


def categories_firsts(slice_dir: Path, count: int) -> list[str]:
    """One item from each of the slice's largest categories: a user who moves between them changes interests."""
    items = pl.read_csv(slice_dir / "items.csv").filter(pl.col("category").is_not_null())
    biggest = items.group_by("category").len().sort(["len", "category"], descending=[True, False])["category"].head(count)
    return [items.filter(pl.col("category") == category).sort("item_id")["item_id"][0] for category in biggest]


def test_each_posted_event_changes_the_live_profile_without_retraining(served: tuple[Served, Client], slice_dir: Path) -> None:
    opened, client = served
    assert isinstance(opened.services, ModelServices)
    engine = opened.services.engine
    index_files = {path: path.stat().st_mtime_ns for path in (slice_dir / "index").rglob("*") if path.is_file()}
    rows_before = engine.items.height
    user, start = "live-u", datetime.now(UTC) - timedelta(hours=1)
    assert client.http.get(f"/users/{user}/profile").status_code == 404
    cold = client.recommendations(user)
    assert cold["source"] == "default:popularity" and len(cold["items"]) == 10
    picks = categories_firsts(slice_dir, 4)
    previous_profile = None
    for n, (item, kind) in enumerate(zip(picks, ("view", "click", "add_to_cart", "purchase"), strict=True)):
        client.post_event(user, item, kind, start + timedelta(minutes=n))
        profile = client.profile(user)
        detail = profile["detail"]
        assert profile["source"] == "model:live-profile" and profile["event_count"] == n + 1
        assert detail["session_events"] == n + 1 and detail["session"][-1]["item_id"] == item
        assert {c["item_id"] for c in detail["long_term_items"]} == set(picks[: n + 1])
        assert detail["intent"] == {k: pytest.approx(1 / (n + 1)) for k in ("view", "click", "add_to_cart", "purchase")[: n + 1]}
        assert len(detail["categories"]) == n + 1 and profile != previous_profile
        recommended = [hit["item_id"] for hit in client.recommendations(user)["items"]]
        assert len(recommended) == 10 and not set(recommended) & set(picks[: n + 1])  # nothing the user already touched
        previous_profile = profile
    # No rebuild and no retraining: the index folder is untouched and the engine holds the same rows.
    assert {path: path.stat().st_mtime_ns for path in index_files} == index_files
    assert engine.items.height == rows_before == len(engine.dense)


def test_a_posted_item_is_searchable_and_similar_at_once(served: tuple[Served, Client], slice_dir: Path) -> None:
    opened, client = served
    new = [
        {
            "item_id": "zx-1",
            "title": "Zyxwv titanium click torque wrench, 1/2 inch drive",
            "brand": "Zyxwv",
            "category": "Tools > Torque Wrenches",
            "price": 40.0,
        },
        {
            "item_id": "zx-2",
            "title": "Zyxwv titanium click torque wrench, 3/8 inch drive",
            "brand": "Zyxwv",
            "category": "Tools > Torque Wrenches",
            "price": 55.0,
        },
    ]
    assert client.http.post("/items", json={"items": new}).json() == {"count": 2, "item_ids": ["zx-1", "zx-2"]}
    found = client.http.post("/search", json={"query": "zyxwv", "k": 5}).json()
    # BM25 finds only the new items; the dense side adds its nearest neighbours after them.
    assert [hit["item_id"] for hit in found["items"]][:2] == ["zx-1", "zx-2"] and found["source"] == "model:hybrid"
    assert found["facets"]["brand"]["Zyxwv"] == 2
    by_meaning = client.http.post("/search", json={"query": "tool to tighten bolts to a set torque", "k": 3}).json()
    assert {"zx-1", "zx-2"} & {hit["item_id"] for hit in by_meaning["items"]}
    assert client.http.get("/items/zx-1/similar", params={"k": 3}).json()["items"][0]["item_id"] == "zx-2"
    for minutes, kind in ((9, "view"), (7, "add_to_cart"), (5, "purchase")):
        client.post_event("wrench-u", "zx-1", kind, datetime.now(UTC) - timedelta(minutes=minutes))
    recommended = [hit["item_id"] for hit in client.recommendations("wrench-u", 5)["items"]]
    assert len(recommended) == 5 and "zx-1" not in recommended
    band = client.profile("wrench-u")["detail"]["price_band"]
    assert band == {"low": 40.0, "median": 40.0, "high": 40.0, "items": 1}
    personal = client.http.post("/search", json={"query": "wrench", "k": 3, "user_id": "wrench-u"}).json()
    assert personal["source"] == "model:hybrid+profile"
    filtered = client.http.post("/search", json={"query": "wrench", "category": "Tools", "price_max": 50}).json()
    assert [hit["item_id"] for hit in filtered["items"]] == ["zx-1"]


# -- erasure everywhere ------------------------------------------------------------------------


def sqlite_rows_mentioning(path: Path, text: str) -> list[str]:
    """table.column of every SQLite row with the text anywhere in any column."""
    with sqlite3.connect(path) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        found = []
        for table in tables:
            for column in [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]:
                if connection.execute(f"SELECT COUNT(*) FROM {table} WHERE CAST({column} AS TEXT) LIKE ?", (f"%{text}%",)).fetchone()[0]:
                    found.append(f"{table}.{column}")
    return found


def postgres_rows_mentioning(dsn: str, text: str) -> list[str]:
    """table.column of every PostgreSQL row (public schema) with the text anywhere in any column."""
    with psycopg.connect(dsn) as connection:
        columns = connection.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'").fetchall()
        return [
            f"{table}.{column}"
            for table, column in columns
            if connection.execute(f'SELECT COUNT(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE %s', (f"%{text}%",)).fetchone()[0]  # type: ignore[index]
        ]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_erasure_leaves_no_trace_of_the_user_or_their_pseudonym(backend: str, request: pytest.FixtureRequest, slice_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "vector-cache"
    settings: dict[str, Any] = {**FAST, "encode": {"encoder": "minilm-int8", "cache_dir": str(cache)}, "privacy": {"enabled": True, "key": PSEUDONYM_KEY}}
    dsn = None
    if backend == "postgres":
        dsn = fresh_postgres_dsn(request.getfixturevalue("postgres"))
        settings["serve"] = {"store": "postgres", "postgres_dsn": dsn}
    config = LongtailConfig.model_validate(settings)
    raw, other = "erase-me", "keep-me"
    pseudonym = pseudonymiser_from_config(config.privacy).pseudonym
    alias, other_alias = pseudonym(raw), pseudonym(other)
    history = pl.read_parquet(slice_dir / "events.parquet")
    items = history["item_id"].unique(maintain_order=True).to_list()
    # Older history holds the user under both spellings: raw (stored before pseudonymisation was on) and pseudonymised.
    legacy = pl.concat([history.head(3).with_columns(pl.lit(alias).alias("user_id")), history.slice(3, 2).with_columns(pl.lit(raw).alias("user_id"))])
    data = copy_data(slice_dir, tmp_path / "data", pl.concat([history, legacy]))
    index = tmp_path / "index"
    SearchEngine.build(
        pl.read_csv(slice_dir / "items.csv"), config, events=pl.concat([history, legacy]), directory=index, vectors=np.load(slice_dir / "index" / VECTORS_FILE)
    )
    opened = open_served(data, config, index)
    services = opened.services
    assert isinstance(services, ModelServices)
    key = make_keys(opened.store)["admin"]
    start = datetime.now(UTC) - timedelta(hours=1)
    with LiveServer(create_app(config, services, opened.store)) as server:
        client = Client(server.url, key)
        # A posted item goes through the embedding cache, so the cache is one of the places searched below.
        assert client.http.post("/items", json={"items": [{"item_id": "cached-1", "title": "Qwerty bench vise, 4 inch jaws"}]}).status_code == 200
        for n, user in enumerate((raw, raw, other, other)):
            client.post_event(user, (*items[:3], "cached-1")[n], "view", start + timedelta(minutes=n))
        search = {
            "user_id": raw,
            "event_type": "search",
            "query": "vise, mail me at erase.me@example.com",
            "timestamp": (start + timedelta(minutes=5)).isoformat(),
        }
        assert client.http.post("/events", json={"events": [search]}).status_code == 201
        # Posted events are stored under the pseudonym only, PII scrubbed; the API answers under the id the client sent.
        assert opened.store.user_events(alias, 1)[0].query == "vise, mail me at [EMAIL]"
        assert (opened.store.count(alias), opened.store.count(raw), opened.store.count(other_alias), opened.store.count(other)) == (6, 2, 2, 0)
        for user in (raw, other):
            assert client.profile(user)["user_id"] == user and client.profile(user)["event_count"] == opened.store.count(pseudonym(user))
            client.recommendations(user)
        client.http.post("/search", json={"query": "tape", "user_id": raw})
        services.live_profile(raw)  # the legacy spelling's profile, as a process that served it before would hold it
        assert {raw, alias, other_alias} <= set(services.cached_users())
        kept = client.profile(other)
        assert client.http.delete(f"/users/{raw}").json() == {"user_id": raw, "events_deleted": 6 + 2}
        not_found = client.http.get(f"/users/{raw}/profile")
        assert not_found.status_code == 404 and alias not in not_found.text
        assert client.profile(other) == kept  # other users are untouched
        client.http.close()
    assert (cache / "minilm-int8" / "keys.txt").is_file()
    for spelling in (raw, alias):
        assert spelling not in services.cached_users()
        assert services.engine.recent.filter(pl.col("user_id") == spelling).height == 0
        assert pl.read_parquet(index / RECENT_FILE).filter(pl.col("user_id") == spelling).height == 0
        assert all(spelling.encode() not in path.read_bytes() for path in cache.rglob("*") if path.is_file())
        if backend == "sqlite":
            assert sqlite_rows_mentioning(data / "longtail.db", spelling) == []
            # secure_delete and the WAL truncation leave no copy of the erased rows in the files either.
            for path in data.glob("longtail.db*"):
                assert spelling.encode() not in path.read_bytes(), path.name
        else:
            assert postgres_rows_mentioning(dsn, spelling) == []  # type: ignore[arg-type]
    assert opened.store.count(other_alias) == 2 and other_alias in services.cached_users()
    assert pl.read_parquet(index / RECENT_FILE)["user_id"].n_unique() == SLICE_USERS
    opened.close()


def test_an_index_inside_the_served_directory_is_used_and_none_means_defaults(slice_dir: Path, tmp_path: Path) -> None:
    config = LongtailConfig.model_validate(FAST)
    data = copy_data(slice_dir, tmp_path / "data")
    plain = open_served(data, config)
    assert type(plain.services).__name__ == "DefaultServices"
    plain.close()
    shutil.copytree(slice_dir / "index", data / "index")
    built = open_served(data, config)
    assert isinstance(built.services, ModelServices) and built.services.engine.directory == data / "index"
    built.close()


def test_two_server_processes_over_one_store_see_each_others_events_items_and_erasures(slice_dir: Path, tmp_path: Path) -> None:
    """What `serve.workers` processes share is the store: each of two servers over it sees, at its next request, an event,
    an item and an erasure the other one was sent, even for a profile it already holds in memory."""
    config = LongtailConfig.model_validate(FAST)
    data = copy_data(slice_dir, tmp_path / "data")
    first, second = open_served(data, config, slice_dir / "index"), open_served(data, config, slice_dir / "index")
    key = make_keys(first.store)["admin"]
    with LiveServer(create_app(config, first.services, first.store)) as one, LiveServer(create_app(config, second.services, second.store)) as two:
        a, b = Client(one.url, key), Client(two.url, key)
        user, start = "two-u", datetime.now(UTC) - timedelta(hours=1)
        picks = categories_firsts(slice_dir, 2)
        a.post_event(user, picks[0], "view", start)
        assert b.profile(user)["detail"]["intent"] == {"view": 1.0}  # b now holds the profile in memory
        a.post_event(user, picks[1], "purchase", start + timedelta(minutes=1))
        detail = b.profile(user)["detail"]
        assert detail["intent"] == {"view": 0.5, "purchase": 0.5} and detail["session"][-1]["item_id"] == picks[1]
        personalised = b.http.post("/search", json={"query": "tool", "k": 5, "user_id": user}).json()
        assert personalised["source"].endswith("+profile")

        item = {"item_id": "qv-1", "title": "Qvzxw anodised bench vise, 6 inch jaws", "brand": "Qvzxw", "category": "Tools > Vises", "price": 80.0}
        assert "qv-1" not in {hit["item_id"] for hit in b.http.post("/search", json={"query": "qvzxw", "k": 3}).json()["items"]}  # now cached
        assert a.http.post("/items", json={"items": [item]}).status_code == 200
        found = b.http.post("/search", json={"query": "qvzxw", "k": 3}).json()
        assert found["items"][0]["item_id"] == "qv-1"
        b.post_event(user, "qv-1", "view", start + timedelta(minutes=2))  # b accepts events on it

        assert a.http.delete(f"/users/{user}").status_code == 200
        assert b.http.get(f"/users/{user}/profile").status_code == 404  # b's cached profile went with the erasure
        assert b.http.post("/search", json={"query": "tool", "k": 5, "user_id": user}).json()["source"] == "model:hybrid"
        for client in (a, b):
            client.http.close()
    first.close()
    second.close()


def test_the_default_services_of_a_second_process_find_an_item_posted_to_the_first_at_once(slice_dir: Path, tmp_path: Path) -> None:
    config = LongtailConfig()
    data = copy_data(slice_dir, tmp_path / "data")
    first, second = open_served(data, config), open_served(data, config)
    try:
        query = SearchRequest(query="qvzxw", k=3)
        assert second.services.search(query).items == []
        item = ItemIn(item_id="qv-2", title="Qvzxw cast iron bench vise", brand="Qvzxw", category="Tools > Vises", price=60.0)
        first.store.upsert_items([item.model_dump()])  # what POST /items does: the store first, then this process's services
        first.services.upsert_items([item])
        assert [hit.item_id for hit in second.services.search(query).items] == ["qv-2"]
        assert second.services.unknown_items(["qv-2"]) == []
    finally:
        first.close()
        second.close()
