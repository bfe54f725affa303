"""Regression tests for the faults issue 16 found: each failed before its fix, against a real server on loopback."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import polars as pl
import pytest

from longtail.core.artifacts import MANIFEST_FILE, verify_manifest
from longtail.core.config import CONFIG_FILENAME, LongtailConfig
from longtail.core.errors import InputDataError, PrivacyError, StoreError
from longtail.privacy.erasure import scrub_reports
from longtail.search.engine import ITEMS_FILE, RECENT_FILE, VECTORS_FILE, SearchEngine
from longtail.serve.app import create_app
from longtail.serve.events import StoredEvent
from longtail.serve.loading import open_served
from longtail.serve.sqlite_store import SqliteEventStore
from longtail.serve.store import EventStore, Idempotency

from conftest import Api, LiveServer, free_port, fresh_postgres_dsn, make_keys

ITEM = "B0000223SI"  # in the demo catalogue
FAST = {"encode": {"encoder": "minilm-int8"}}


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as http:
        yield http


def nested(depth: int) -> dict[str, Any]:
    """An attributes object whose objects nest `depth` levels deep."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def post_events(client: httpx.Client, api: Api, events: list[dict[str, Any]]) -> httpx.Response:
    return client.post("/events", json={"events": events}, headers=api.headers("admin"))


# D1: an offset moving a timestamp past year 9999 (or before year 1) in UTC raised OverflowError: a 500.
@pytest.mark.parametrize("timestamp", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+01:00"])
def test_timestamps_whose_utc_instant_overflows_get_422_and_write_nothing(client: httpx.Client, api: Api, timestamp: str) -> None:
    before = api.store.count()
    response = post_events(client, api, [{"user_id": "d1", "item_id": ITEM, "event_type": "view", "timestamp": timestamp}])
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_events"
    assert "outside the years 1-9999" in response.json()["error"]["message"]
    assert api.store.count() == before


# D2: attributes nested 256 to ~1,000 levels failed in model_dump ("Maximum serialization depth exceeded"): a 500.
@pytest.mark.parametrize("depth", [33, 256, 600])
def test_deeply_nested_attributes_get_422_and_store_nothing(client: httpx.Client, api: Api, depth: int) -> None:
    before = len(api.store.items())
    item = {"item_id": f"deep-{depth}", "title": "Deep", "attributes": nested(depth)}
    response = client.post("/items", json={"items": [item]}, headers=api.headers("admin"))
    assert response.status_code == 422, response.text[:300]
    assert "nest at most 32 levels" in response.json()["error"]["message"]
    assert len(api.store.items()) == before


def test_attributes_nested_within_the_limit_are_stored(client: httpx.Client, api: Api) -> None:
    response = client.post("/items", json={"items": [{"item_id": "deep-32", "title": "Deep", "attributes": nested(32)}]}, headers=api.headers("admin"))
    assert response.status_code == 200, response.text
    stored = next(item for item in api.store.items() if item["item_id"] == "deep-32")
    assert stored["attributes"] == nested(32)


# Also: NaN (and infinities) inside attributes were accepted and stored as non-standard JSON.
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_attributes_get_422(client: httpx.Client, api: Api, number: str) -> None:
    before = len(api.store.items())
    body = '{"items": [{"item_id": "nan-item", "title": "NaN", "attributes": {"weight": ' + number + "}}]}"
    response = client.post("/items", content=body, headers={**api.headers("admin"), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert "NaN or infinite" in response.json()["error"]["message"]
    assert len(api.store.items()) == before


# Also: a whitespace-only query matched everything and returned 100 arbitrary items.
@pytest.mark.parametrize("query", [" ", "\t\n", "\u3000 \u00a0"])
def test_whitespace_only_queries_get_422(client: httpx.Client, api: Api, query: str) -> None:
    response = client.post("/search", json={"query": query}, headers=api.headers("read"))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


# D3: '/' in an id is decoded before routing, so a user posted as "a/b" could be neither viewed nor erased.
@pytest.mark.parametrize("user_id", ["shop/42", "a/b/c", "..", "100%", "x/../y", "/lead", "trail/"])
def test_users_with_slashes_and_dots_in_their_id_can_be_viewed_and_erased(client: httpx.Client, api: Api, user_id: str) -> None:
    posted = post_events(client, api, [{"user_id": user_id, "item_id": ITEM, "event_type": "view", "timestamp": "2024-05-01T10:00:00Z"}])
    assert posted.status_code == 201, posted.text
    # Dots percent-encoded too: clients (httpx among them) resolve a literal ".." segment away before sending.
    path = quote(user_id, safe="").replace(".", "%2E")
    profile = client.get(f"/users/{path}/profile", headers=api.headers("read"))
    assert profile.status_code == 200, profile.text
    assert profile.json()["user_id"] == user_id and profile.json()["event_count"] == 1
    recommendations = client.get(f"/users/{path}/recommendations", headers=api.headers("read"))
    assert recommendations.status_code == 200 and ITEM not in {hit["item_id"] for hit in recommendations.json()["items"]}
    erased = client.delete(f"/users/{path}", headers=api.headers("admin"))
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"user_id": user_id, "events_deleted": 1}
    assert api.store.count(user_id) == 0


def test_similar_items_reach_an_item_whose_id_has_a_slash(client: httpx.Client, api: Api) -> None:
    item = {"item_id": "sku/7/blue", "title": "Sanding roll 120 grit", "category": "Tools > Abrasives > Sanding Rolls"}
    assert client.post("/items", json={"items": [item]}, headers=api.headers("admin")).status_code == 200
    response = client.get(f"/items/{quote(item['item_id'], safe='')}/similar", params={"k": 3}, headers=api.headers("read"))
    assert response.status_code == 200, response.text
    assert response.json()["item_id"] == "sku/7/blue" and len(response.json()["items"]) == 3


# -- refusing a damaged store or index (D4, D5) -----------------------------------------------------------------


def copy_served(served_dir: Path, tmp_path: Path) -> Path:
    """The served tables without the session's store, so each test starts from its own."""
    data = tmp_path / "data"
    shutil.copytree(served_dir, data, ignore=shutil.ignore_patterns("longtail.db*"))
    return data


def serve_once(data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `longtail serve` expecting it to refuse to start; a started server would hang until the timeout."""
    command = [sys.executable, "-m", "longtail.cli", "serve", "--data", str(data), "--port", str(free_port()), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def foreign_sqlite(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        connection.commit()


# D4: a zero-byte longtail.db started as a new store and re-seeded: every key and posted event silently gone.
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda path: path.write_bytes(b""), "the event store file is empty (0 bytes)"),
        (foreign_sqlite, "not a Longtail event store"),
        (lambda path: path.write_bytes(b"not a database at all" * 50), "not an SQLite database"),
    ],
)
def test_serve_refuses_an_empty_or_foreign_store_with_exit_2(served_dir: Path, tmp_path: Path, damage: Callable[[Path], None], message: str) -> None:
    data = copy_served(served_dir, tmp_path)
    damage(data / "longtail.db")
    before = (data / "longtail.db").read_bytes()
    done = serve_once(data)
    assert done.returncode == 2, done.stderr[-2000:]
    assert message in done.stderr and "longtail.db" in done.stderr and "Traceback" not in done.stderr
    assert (data / "longtail.db").read_bytes() == before  # never re-seeded, never migrated into


def _tables(path: Path) -> list[tuple[str]]:
    if path.read_bytes()[:6] != b"SQLite":
        return []
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as connection:
        return connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()


def test_a_store_missing_a_table_is_refused_and_left_as_it_was(served_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "longtail.db"
    SqliteEventStore(path).close()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE api_keys")
        connection.commit()
    with pytest.raises(StoreError, match=r"longtail\.db: the event store lacks table\(s\) api_keys"):
        SqliteEventStore(path)
    assert ("api_keys",) not in _tables(path)
    assert not (tmp_path / "data").exists()


def test_a_new_store_appears_whole_and_a_foreign_one_is_not_touched(tmp_path: Path) -> None:
    SqliteEventStore(tmp_path / "new.db").close()
    assert {"events", "api_keys", "idempotency"} <= {row[0] for row in _tables(tmp_path / "new.db")}
    assert not list(tmp_path.glob(".*creating*"))
    foreign_sqlite(tmp_path / "shop.db")
    before = (tmp_path / "shop.db").read_bytes()
    with pytest.raises(StoreError, match="shop.db"):
        SqliteEventStore(tmp_path / "shop.db")
    assert (tmp_path / "shop.db").read_bytes() == before


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory, served_dir: Path) -> Path:
    """A real hybrid index over 200 demo items (vectors given, so nothing is encoded)."""
    folder = tmp_path_factory.mktemp("index")
    items = pl.read_csv(served_dir / "items.csv").head(200)
    vectors = np.random.default_rng(7).normal(size=(items.height, 16)).astype(np.float32)
    SearchEngine.build(items, LongtailConfig.model_validate(FAST), directory=folder / "index", vectors=vectors)
    return folder / "index"


def test_an_index_is_built_with_a_manifest_of_every_file(small_index: Path) -> None:
    listed = json.loads((small_index / MANIFEST_FILE).read_text())["files"]
    assert {ITEMS_FILE, VECTORS_FILE, RECENT_FILE, "ann.faiss", CONFIG_FILENAME} <= set(listed)
    assert any(name.startswith("lexical/") for name in listed)
    assert listed[VECTORS_FILE]["bytes"] == (small_index / VECTORS_FILE).stat().st_size
    assert verify_manifest(small_index)


# D5: a truncated or emptied index file crashed `serve` with a traceback from numpy, faiss, polars or tantivy.
@pytest.mark.parametrize("name", [VECTORS_FILE, "ann.faiss", ITEMS_FILE, RECENT_FILE, "lexical"])
@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_a_damaged_index_file_is_named_and_serve_exits_2(small_index: Path, served_dir: Path, tmp_path: Path, name: str, how: str) -> None:
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    target = index / name if name != "lexical" else max((index / name).glob("*.idx"), key=lambda p: p.stat().st_size)
    content = target.read_bytes()
    target.write_bytes(content[: len(content) // 2] if how == "truncated" else b"")
    with pytest.raises(InputDataError, match=re.escape(str(target))):
        SearchEngine.open(index)
    if name == VECTORS_FILE and how == "empty":  # one end-to-end run of the command: the others take the same path
        data = copy_served(served_dir, tmp_path)
        done = serve_once(data, "--index", str(index))
        assert done.returncode == 2, done.stderr[-2000:]
        assert str(target) in done.stderr and "Traceback" not in done.stderr


def test_erasing_a_user_keeps_the_manifest_true(small_index: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    shutil.copytree(small_index, index)
    engine = SearchEngine.open(index)
    engine.recent = pl.DataFrame({"user_id": ["gone", "kept"], "item_ids": [["a"], ["b"]]})
    engine.forget_users(["gone"])
    assert verify_manifest(index) and SearchEngine.open(index).recent["user_id"].to_list() == ["kept"]


# D6: erasure left the user id in the served folder's report.json / report.html.
def test_erasure_scrubs_the_served_folders_reports(served_dir: Path, tmp_path: Path) -> None:
    data = copy_served(served_dir, tmp_path)
    user = "report-user/1"
    report = {"examples": [{"user_id": user, "reason": f"bot: {user} sent 900 events"}, {"user_id": "report-user/12"}], user: 3}
    (data / "audit").mkdir()
    (data / "audit" / "report.json").write_text(json.dumps(report))
    (data / "audit" / "report.html").write_text(f"<td>{html.escape(user)}</td><td>report-user/12</td>")
    config = LongtailConfig()
    served = open_served(data, config)
    key = make_keys(served.store)["admin"]
    try:
        with LiveServer(create_app(config, served.services, served.store, reports_dir=data)) as server:
            headers = {"Authorization": f"Bearer {key}"}
            event = {"user_id": user, "item_id": ITEM, "event_type": "view", "timestamp": "2024-05-01T10:00:00Z"}
            assert httpx.post(f"{server.url}/events", json={"events": [event]}, headers=headers).status_code == 201
            erased = httpx.delete(f"{server.url}/users/{quote(user, safe='')}", headers=headers)
            assert erased.status_code == 200 and erased.json()["events_deleted"] == 1
    finally:
        served.close()
    scrubbed = json.loads((data / "audit" / "report.json").read_text())
    assert scrubbed == {"examples": [{"user_id": "[erased]", "reason": "bot: [erased] sent 900 events"}, {"user_id": "report-user/12"}], "[erased]": 3}
    assert (data / "audit" / "report.html").read_text() == "<td>[erased]</td><td>report-user/12</td>"


# -- idempotent writes ---------------------------------------------------------------------------------------------


def test_a_retried_event_batch_with_the_same_idempotency_key_is_stored_once(client: httpx.Client, api: Api) -> None:
    events = {"events": [{"user_id": "idem-u1", "item_id": ITEM, "event_type": "view", "timestamp": "2024-05-01T10:00:00Z"}] * 3}
    headers = {**api.headers("read_write"), "Idempotency-Key": "batch-0001"}
    first = client.post("/events", json=events, headers=headers)
    assert first.status_code == 201 and first.json()["count"] == 3 and "Idempotent-Replayed" not in first.headers
    before = api.store.count()
    retry = client.post("/events", json=events, headers=headers)
    assert retry.status_code == 201 and retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    assert api.store.count() == before and api.store.count("idem-u1") == 3
    changed = client.post("/events", json={"events": events["events"][:1]}, headers=headers)
    assert changed.status_code == 422 and changed.json()["error"]["code"] == "idempotency_key_reused"
    assert api.store.count() == before
    # Keys belong to the API key that sent them: another client's "batch-0001" is a new request.
    other = client.post("/events", json=events, headers={**api.headers("admin"), "Idempotency-Key": "batch-0001"})
    assert other.status_code == 201 and other.json()["ids"] != first.json()["ids"] and api.store.count() == before + 3


def test_a_retried_item_batch_with_the_same_idempotency_key_writes_nothing_new(client: httpx.Client, api: Api) -> None:
    items = {"items": [{"item_id": "idem-item", "title": "Idempotent sanding roll"}]}
    headers = {**api.headers("admin"), "Idempotency-Key": "items-0001"}
    first = client.post("/items", json=items, headers=headers)
    assert first.status_code == 200 and first.json() == {"count": 1, "item_ids": ["idem-item"]}
    written = api.store._read("SELECT updated_us FROM items WHERE item_id = 'idem-item'")
    retry = client.post("/items", json=items, headers=headers)
    assert retry.status_code == 200 and retry.json() == first.json() and retry.headers["Idempotent-Replayed"] == "true"
    assert api.store._read("SELECT updated_us FROM items WHERE item_id = 'idem-item'") == written


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_retries_with_one_key_store_one_batch(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    store: EventStore
    if backend == "postgres":
        from longtail.serve.postgres_store import PostgresEventStore

        store = PostgresEventStore(fresh_postgres_dsn(request.getfixturevalue("postgres")))
    else:
        store = SqliteEventStore(tmp_path / "events.db")
    batch = [StoredEvent("u1", "a", "view", datetime(2024, 5, 1, tzinfo=UTC)), StoredEvent("u1", "b", "click", datetime(2024, 5, 1, tzinfo=UTC))]
    once = Idempotency("key-1", "retry-me", "POST /events", "f" * 64)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: store.append_once(batch, once), range(16)))
    assert store.count() == 2
    assert {tuple(answer["ids"]) for answer, _ in answers} == {tuple(sorted(store.event_ids()))}
    assert sum(not replayed for _, replayed in answers) == 1
    store.close()


# -- abuse and error handling ----------------------------------------------------------------------------------------


# Also: invalid keys were never rate-limited (1,749 req/s of database look-ups from one client).
def test_invalid_keys_are_rate_limited_per_client_address_without_a_key_lookup(served_dir: Path, tmp_path: Path) -> None:
    config = LongtailConfig.model_validate({"serve": {"invalid_key_burst": 3, "invalid_key_rate_per_second": 0.5}})
    store = SqliteEventStore(tmp_path / "events.db")
    make_keys(store)
    lookups = []
    original = store.get_key
    store.get_key = lambda key_id: lookups.append(key_id) or original(key_id)  # type: ignore[method-assign]
    served = open_served(copy_served(served_dir, tmp_path), LongtailConfig())
    with LiveServer(create_app(config, served.services, store)) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        bad = [http.get("/metrics", headers={"Authorization": f"Bearer lt_nosuchkey{n:04d}_{'x' * 43}"}) for n in range(6)]
        assert [r.status_code for r in bad] == [401, 401, 401, 429, 429, 429]
        assert int(bad[-1].headers["Retry-After"]) >= 1 and bad[-1].json()["error"]["code"] == "rate_limited"
        assert len(lookups) == 3  # the refused attempts never reached the store
        assert http.get("/health").status_code == 200  # routes without a key are not affected
    store.close()
    served.close()


# Also: a bad Content-Length got uvicorn's plain-text 400.
@pytest.mark.parametrize("length", [b"abc", b"-1", b"1, 2", b"5\r\nContent-Length: 6"])
def test_a_bad_content_length_gets_a_json_400(api: Api, length: bytes) -> None:
    before = api.store.count()
    port = int(api.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}")
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"]["code"] in ("bad_request", "bad_content_length")
    assert api.store.count() == before


class Broken:
    """Services whose search fails unexpectedly; everything else is never reached in the test."""

    def search(self, request: object) -> None:
        raise RuntimeError("boom in search")


# Also: an unhandled error was logged twice (our handler, then uvicorn again after Starlette re-raised it).
def test_an_unhandled_error_is_one_json_500_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    key = make_keys(store)["read"]
    app = create_app(LongtailConfig(), Broken(), store)  # type: ignore[arg-type]

    async def search() -> httpx.Response:
        # raise_app_exceptions: anything escaping the app (what uvicorn would log a second time) fails the request here.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await http.post("/search", json={"query": "x"}, headers={"Authorization": f"Bearer {key}"})

    with caplog.at_level(logging.ERROR):
        response = asyncio.run(search())
    assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
    assert "boom" not in response.text
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None and "POST /search" in errors[0].getMessage()
    store.close()


# Also: the page's CSP allowed inline scripts; /docs loaded Swagger UI from a CDN (blank offline).
def test_the_page_runs_no_inline_code_and_its_assets_come_from_this_server(client: httpx.Client) -> None:
    page = client.get("/")
    policy = page.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "script-src 'self'" in policy and "style-src 'self'" in policy
    assert "<script>" not in page.text and "<style>" not in page.text and ' style="' not in page.text
    script, style = client.get("/web/page.js"), client.get("/web/page.css")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript") and "addEventListener" in script.text
    assert style.status_code == 200 and "body" in style.text
    assert client.get("/web/../app.py").status_code == 404 and client.get("/web/other.js").status_code == 404


@pytest.mark.parametrize(("path", "asset"), [("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")])
def test_api_docs_load_their_assets_from_this_server(client: httpx.Client, path: str, asset: str) -> None:
    page = client.get(path)
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/") for source in sources), sources
    assert f"/docs-assets/{asset}" in sources
    assert all(client.get(source).status_code == 200 for source in sources)
    assert len(client.get(f"/docs-assets/{asset}").content) > 100_000


def test_a_report_that_cannot_be_scrubbed_is_named_in_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "audit").mkdir()
    (tmp_path / "audit" / "report.json").write_text("{not json")
    (tmp_path / "report.html").write_text("<td>u1</td> <td>u12</td> <td>xu1</td>")
    with pytest.raises(PrivacyError, match=re.escape(str(tmp_path / "audit" / "report.json"))):
        scrub_reports(tmp_path, ["u1"])
    # Files are scrubbed one by one, each atomically: the page visited before the broken file is already clean.
    assert (tmp_path / "report.html").read_text() == "<td>[erased]</td> <td>u12</td> <td>xu1</td>"
    (tmp_path / "audit" / "report.json").write_text(json.dumps({"users": ["u1", "u12"]}))
    assert scrub_reports(tmp_path, ["u1"]) == [tmp_path / "audit" / "report.json"]
    assert json.loads((tmp_path / "audit" / "report.json").read_text()) == {"users": ["[erased]", "u12"]}
    assert scrub_reports(tmp_path, ["u1"]) == []  # nothing left to change
