"""Every endpoint through a real uvicorn server: answers, scope denials, and bad input that changes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from longtail.core.config import LongtailConfig
from longtail.serve.app import create_app
from longtail.serve.loading import open_served

from conftest import Api, LiveServer, fresh_postgres_dsn, make_keys

ITEM = "B0000223SI"  # PORTER-CABLE sanding roll, in the demo catalogue
INJECTION = "x'; DROP TABLE events; --"


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as http:
        yield http


def snapshot(api: Api) -> tuple[int, int, tuple[str, ...]]:
    """What a rejected request must leave unchanged: event and key counts, and the posted items."""
    return api.store.count(), len(api.store.keys()), tuple(sorted(item["item_id"] for item in api.store.items()))


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["message"] and "Traceback" not in response.text
    if code:
        assert body["code"] == code
    return body


# -- success paths -----------------------------------------------------------------------------


def test_health_needs_no_key(client: httpx.Client, api: Api) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "store": "SqliteEventStore", "events": api.store.count(), "model": None, "process": os.getpid()}


def test_search_ranks_title_matches_with_facets_and_filters(client: httpx.Client, api: Api) -> None:
    body = client.post("/search", json={"query": "sanding roll", "k": 5}, headers=api.headers("read")).json()
    assert len(body["items"]) == 5 and body["total"] >= 5
    assert all("sanding" in hit["title"].lower() and "roll" in hit["title"].lower() for hit in body["items"][:2])
    assert sum(body["facets"]["brand"].values()) <= body["total"]
    filtered = client.post("/search", json={"query": "sanding", "brand": "porter-cable"}, headers=api.headers("read")).json()
    assert filtered["items"] and {hit["brand"] for hit in filtered["items"]} == {"PORTER-CABLE"}


def test_recommendations_skip_seen_items_and_respect_k(client: httpx.Client, api: Api) -> None:
    user = api.store.user_events("ABW8NXS7SV55K")
    assert user, "the demo slice starts with this user"
    body = client.get("/users/ABW8NXS7SV55K/recommendations", params={"k": 7}, headers=api.headers("read")).json()
    assert len(body["items"]) == 7
    assert not {hit["item_id"] for hit in body["items"]} & {e.item_id for e in user}
    cold = client.get("/users/never-seen/recommendations", headers=api.headers("read")).json()
    assert cold["source"] == "default:popularity" and len(cold["items"]) == 10


def test_similar_items_share_the_category(client: httpx.Client, api: Api) -> None:
    body = client.get(f"/items/{ITEM}/similar", params={"k": 3}, headers=api.headers("read")).json()
    assert len(body["items"]) == 3 and ITEM not in {hit["item_id"] for hit in body["items"]}
    assert body["items"][0]["category"].endswith("Sanding Rolls")


def test_posted_events_are_committed_then_shape_the_profile(client: httpx.Client, api: Api) -> None:
    events = [
        {"user_id": "api-u1", "item_id": ITEM, "event_type": "view", "timestamp": "2024-05-01T10:00:00Z"},
        {"user_id": "api-u1", "item_id": None, "event_type": "search", "query": "砂纸 sanding", "timestamp": "2024-05-01T10:01:00+02:00"},
        {"user_id": "api-u1", "item_id": ITEM, "event_type": "rating", "rating": 5, "timestamp": "2024-05-01T10:02:00"},
    ]
    response = client.post("/events", json={"events": events}, headers=api.headers("write"))
    assert response.status_code == 201
    ids = response.json()["ids"]
    stored = api.store.user_events("api-u1")
    assert sorted(e.id for e in stored) == sorted(ids)
    assert stored[0].event_type == "rating" and stored[-1].timestamp.isoformat() == "2024-05-01T08:01:00+00:00"
    profile = client.get("/users/api-u1/profile", headers=api.headers("read")).json()
    assert profile["event_count"] == 3 and profile["event_types"] == {"view": 1, "search": 1, "rating": 1}
    assert profile["top_brands"][0]["name"] == "PORTER-CABLE"


def test_erasure_deletes_every_event_of_the_user(client: httpx.Client, api: Api) -> None:
    client.post("/events", json={"events": [{"user_id": "api-erase", "item_id": ITEM, "event_type": "click"}] * 3}, headers=api.headers("write"))
    before = api.store.count()
    response = client.delete("/users/api-erase", headers=api.headers("admin"))
    assert response.json() == {"user_id": "api-erase", "events_deleted": 3}
    assert api.store.count("api-erase") == 0 and api.store.count() == before - 3
    assert_error(client.get("/users/api-erase/profile", headers=api.headers("read")), 404, "unknown_id")


def test_posted_items_are_stored_and_searchable_at_once(client: httpx.Client, api: Api) -> None:
    item = {"item_id": "api-new-1", "title": "Zyxwv quantum torque wrench", "brand": "Zyx", "category": "Tools > Wrenches", "price": 12.5, "currency": "USD"}
    response = client.post("/items", json={"items": [item]}, headers=api.headers("admin"))
    assert response.json() == {"count": 1, "item_ids": ["api-new-1"]}
    hits = client.post("/search", json={"query": "zyxwv"}, headers=api.headers("read")).json()["items"]
    assert [hit["item_id"] for hit in hits] == ["api-new-1"]
    assert "api-new-1" in {stored["item_id"] for stored in api.store.items()}
    event = {"user_id": "api-u2", "item_id": "api-new-1", "event_type": "purchase"}
    assert client.post("/events", json={"events": [event]}, headers=api.headers("write")).status_code == 201


def test_posted_event_attributes_are_stored_and_a_return_is_an_event_type(client: httpx.Client, api: Api) -> None:
    line = {"invoice": "C536379", "quantity": -1, "price": 27.5}
    response = client.post(
        "/events", json={"events": [{"user_id": "api-u3", "item_id": ITEM, "event_type": "return", "attributes": line}]}, headers=api.headers("write")
    )
    assert response.status_code == 201
    [stored] = api.store.user_events("api-u3")
    assert (stored.event_type, stored.attributes) == ("return", line)


def test_metrics_count_requests_per_route_and_events_written(client: httpx.Client, api: Api) -> None:
    client.post("/events", json={"events": [{"user_id": "api-m", "item_id": ITEM, "event_type": "view"}]}, headers=api.headers("write"))
    text = client.get("/metrics", headers=api.headers("read")).text
    assert 'longtail_requests_total{method="POST",route="/events",status="201"}' in text
    assert "longtail_request_seconds_bucket" in text
    written = next(line for line in text.splitlines() if line.startswith("longtail_events_written_total"))
    assert float(written.split()[-1]) >= 1


def test_every_answer_says_how_long_the_server_spent_on_it(client: httpx.Client, api: Api) -> None:
    for response in (client.get("/health"), client.get("/users/api-nobody/recommendations", headers=api.headers("read")), client.get("/metrics")):  # a 401 too
        name, _, duration = response.headers["server-timing"].partition(";dur=")
        assert name == "app" and 0 < float(duration) < 60_000


def test_openapi_spec_is_served(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/search",
        "/events",
        "/users/{user_id}",
        "/users/{user_id}/recommendations",
        "/users/{user_id}/profile",
        "/items",
        "/items/{item_id}/similar",
        "/health",
        "/metrics",
    } <= set(spec["paths"])


# -- scopes ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    body: dict[str, Any] | None
    scope: str
    wrong_key: str


ENDPOINTS = [
    Endpoint("POST", "/search", {"query": "glue"}, "read", "write"),
    Endpoint("GET", "/users/ABW8NXS7SV55K/recommendations", None, "read", "write"),
    Endpoint("GET", "/users/ABW8NXS7SV55K/profile", None, "read", "write"),
    Endpoint("GET", f"/items/{ITEM}/similar", None, "read", "write"),
    Endpoint("GET", "/metrics", None, "read", "write"),
    Endpoint("POST", "/events", {"events": [{"user_id": "scope-u", "item_id": ITEM, "event_type": "view"}]}, "write_events", "read"),
    Endpoint("DELETE", "/users/ABW8NXS7SV55K", None, "admin", "read_write"),
    Endpoint("POST", "/items", {"items": [{"item_id": "scope-item", "title": "Scope test"}]}, "admin", "read_write"),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_endpoint_checks_its_scope(client: httpx.Client, api: Api, endpoint: Endpoint) -> None:
    before = snapshot(api)
    attempts = {
        "no key": ({}, 401, "missing_api_key"),
        "unknown key": ({"Authorization": "Bearer lt_0000000000000000_nope"}, 401, "invalid_api_key"),
        "not a key": ({"Authorization": "Bearer ' OR 1=1 --"}, 401, "invalid_api_key"),
        "revoked key": (api.headers("revoked"), 401, "invalid_api_key"),
        "basic auth": ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "missing_api_key"),
        "wrong scope": (api.headers(endpoint.wrong_key), 403, "insufficient_scope"),
    }
    for name, (headers, status, code) in attempts.items():
        response = client.request(endpoint.method, endpoint.path, json=endpoint.body, headers=headers)
        assert response.status_code == status, f"{name}: {response.text}"
        assert response.json()["error"]["code"] == code, name
        if status == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    assert snapshot(api) == before


@pytest.mark.parametrize("path", ["/events", "/search", "/items"])
def test_the_key_is_checked_before_the_body_is_parsed(client: httpx.Client, api: Api, path: str) -> None:
    before = snapshot(api)
    response = client.post(path, content=b'{"broken": ', headers={"Content-Type": "application/json"})
    assert_error(response, 401, "missing_api_key")
    assert snapshot(api) == before


def test_the_spec_names_each_routes_scope_and_the_bearer_scheme(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/events"]["post"]["x-required-scope"] == "write_events"
    assert spec["paths"]["/users/{user_id}"]["delete"]["x-required-scope"] == "admin"
    assert spec["paths"]["/search"]["post"]["x-required-scope"] == "read"


def test_admin_may_use_every_scope(client: httpx.Client, api: Api) -> None:
    assert client.post("/search", json={"query": "glue"}, headers=api.headers("admin")).status_code == 200


# -- malformed input: a clear 4xx, and nothing changes -------------------------------------------

VIEW = {"user_id": "bad-u", "item_id": ITEM, "event_type": "view"}
MALFORMED_EVENTS = {
    "bad JSON": (b'{"events": [', 400, "malformed_json"),
    "JSON array, not object": (b"[1, 2]", 422, "invalid_request"),
    "events not a list": ({"events": "view"}, 422, "invalid_request"),
    "empty batch": ({"events": []}, 422, "invalid_request"),
    "unknown event type": ({"events": [{**VIEW, "event_type": "like"}]}, 422, "invalid_request"),
    "rating is text": ({"events": [{**VIEW, "event_type": "rating", "rating": "five"}]}, 422, "invalid_request"),
    "rating out of range": ({"events": [{**VIEW, "event_type": "rating", "rating": 7}]}, 422, "invalid_events"),
    "rating event without rating": ({"events": [{**VIEW, "event_type": "rating"}]}, 422, "invalid_request"),
    "view without item": ({"events": [{**VIEW, "item_id": None}]}, 422, "invalid_request"),
    "search without query": ({"events": [{**VIEW, "item_id": None, "event_type": "search"}]}, 422, "invalid_request"),
    "timestamp in the future": ({"events": [{**VIEW, "timestamp": "2999-01-01T00:00:00Z"}]}, 422, "invalid_events"),
    "timestamp not a date": ({"events": [{**VIEW, "timestamp": "yesterday"}]}, 422, "invalid_request"),
    "timestamp before 1970": ({"events": [{**VIEW, "timestamp": "1969-12-31T00:00:00Z"}]}, 422, "invalid_events"),
    "user id a number": ({"events": [{**VIEW, "user_id": 12}]}, 422, "invalid_request"),
    "user id empty": ({"events": [{**VIEW, "user_id": ""}]}, 422, "invalid_request"),
    "user id too long": ({"events": [{**VIEW, "user_id": "u" * 500}]}, 422, "invalid_request"),
    "unknown field": ({"events": [{**VIEW, "price": 3}]}, 422, "invalid_request"),
    "attributes not an object": ({"events": [{**VIEW, "attributes": "qty=3"}]}, 422, "invalid_request"),
    "lone surrogate in attributes": (
        b'{"events": [{"user_id": "bad-u", "item_id": "B0000223SI", "event_type": "view", "attributes": {"k": "\\udc00"}}]}',
        422,
        "invalid_request",
    ),
    "unknown item id": ({"events": [{**VIEW, "item_id": "no-such-item"}]}, 422, "unknown_items"),
    "SQL injection item id": ({"events": [{**VIEW, "item_id": INJECTION}]}, 422, "unknown_items"),
    "NUL in user id": ({"events": [{**VIEW, "user_id": "a\x00b"}]}, 422, "invalid_request"),
    "lone surrogate": (b'{"events": [{"user_id": "\\ud800", "item_id": "B0000223SI", "event_type": "view"}]}', 422, "invalid_request"),
    "one bad event among good ones": ({"events": [VIEW, VIEW, {**VIEW, "rating": 0, "event_type": "rating"}]}, 422, "invalid_events"),
    "non-UTF-8 bytes": (b'{"events": [{"user_id": "\xff\xfe", "item_id": "B0000223SI", "event_type": "view"}]}', 400, "not_utf8"),
    "Latin-1 text": ('{"events": [{"user_id": "café", "item_id": "B0000223SI", "event_type": "view"}]}'.encode("latin-1"), 400, "not_utf8"),
}


@pytest.mark.parametrize("case", MALFORMED_EVENTS, ids=list(MALFORMED_EVENTS))
def test_malformed_events_get_a_clear_4xx_and_write_nothing(client: httpx.Client, api: Api, case: str) -> None:
    payload, status, code = MALFORMED_EVENTS[case]
    before = snapshot(api)
    if isinstance(payload, bytes):
        response = client.post("/events", content=payload, headers={**api.headers("write"), "Content-Type": "application/json"})
    else:
        response = client.post("/events", json=payload, headers=api.headers("write"))
    assert_error(response, status, code)
    assert snapshot(api) == before
    assert api.store.count("bad-u") == 0


def test_too_many_events_in_one_batch_are_refused(client: httpx.Client, api: Api) -> None:
    before = snapshot(api)
    small = {"events": [{"user_id": "b", "item_id": ITEM, "event_type": "view"}] * 1001}
    assert_error(client.post("/events", json=small, headers=api.headers("write")), 422, "too_many_events")
    assert snapshot(api) == before


def test_oversized_bodies_get_413_whether_declared_or_streamed(client: httpx.Client, api: Api) -> None:
    before = snapshot(api)
    big = b'{"events": [' + b" " * 2_000_000 + b"]}"
    assert_error(client.post("/events", content=big, headers={**api.headers("write"), "Content-Type": "application/json"}), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the guard must count as it reads
        yield b'{"events": ['
        for _ in range(40):
            yield b" " * 50_000
        yield b"]}"

    response = client.post("/events", content=chunks(), headers={**api.headers("write"), "Content-Type": "application/json"})
    assert_error(response, 413, "body_too_large")
    assert snapshot(api) == before


@pytest.mark.parametrize(
    ("method", "path", "body", "key", "status", "code"),
    [
        ("POST", "/search", b"{not json", "read", 400, "malformed_json"),
        ("POST", "/search", {"query": "glue", "k": "ten"}, "read", 422, "invalid_request"),
        ("POST", "/search", {"query": "glue", "k": 0}, "read", 422, "invalid_request"),
        ("POST", "/search", {"query": ""}, "read", 422, "invalid_request"),
        ("POST", "/search", {"query": "glue", "price_min": -1}, "read", 422, "invalid_request"),
        ("GET", "/users/ABW8NXS7SV55K/recommendations?k=-3", None, "read", 422, "invalid_request"),
        ("GET", "/users/ABW8NXS7SV55K/recommendations?k=1000000", None, "read", 422, "invalid_request"),
        ("GET", "/users/no-such-user/profile", None, "read", 404, "unknown_id"),
        ("GET", f"/users/{INJECTION}/profile", None, "read", 404, "unknown_id"),
        ("GET", "/items/no-such-item/similar", None, "read", 404, "unknown_id"),
        ("GET", f"/items/{INJECTION}/similar", None, "read", 404, "unknown_id"),
        ("GET", "/items/%00/similar", None, "read", 422, "invalid_request"),
        ("DELETE", "/users/no-such-user", None, "admin", 404, "unknown_id"),
        ("DELETE", f"/users/{INJECTION}", None, "admin", 404, "unknown_id"),
        ("DELETE", "/users/' OR '1'='1", None, "admin", 404, "unknown_id"),
        ("POST", "/items", {"items": [{"item_id": "x"}]}, "admin", 422, "invalid_request"),
        ("POST", "/items", {"items": [{"item_id": "x", "title": "t", "price": -5}]}, "admin", 422, "invalid_request"),
        ("POST", "/items", {"items": [{"item_id": "x", "title": "t", "currency": "dollars"}]}, "admin", 422, "invalid_request"),
        ("POST", "/items", b'{"items": [{"item_id": "x", "title": "t", "attributes": {"k": "\\udc00"}}]}', "admin", 422, "invalid_request"),
        ("POST", "/items", b"\x80\x81", "admin", 400, "not_utf8"),
        ("POST", "/search", "query=glue", "read", 415, "unsupported_media_type"),
        ("GET", "/no/such/route", None, "read", 404, "not_found"),
        ("PUT", "/search", None, "read", 405, "method_not_allowed"),
    ],
)
def test_malformed_requests_to_other_endpoints_change_nothing(
    client: httpx.Client, api: Api, method: str, path: str, body: Any, key: str, status: int, code: str
) -> None:
    before = snapshot(api)
    headers = api.headers(key)
    if isinstance(body, bytes):
        response = client.request(method, path, content=body, headers={**headers, "Content-Type": "application/json"})
    elif isinstance(body, str):
        response = client.request(method, path, content=body, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
    else:
        response = client.request(method, path, json=body, headers=headers)
    assert_error(response, status, code)
    assert snapshot(api) == before


def test_injection_looking_text_is_just_text(client: httpx.Client, api: Api) -> None:
    before = snapshot(api)
    response = client.post("/search", json={"query": INJECTION}, headers=api.headers("read"))
    assert response.status_code == 200
    assert snapshot(api) == before and api.store.count() > 0


# -- rate limit and PostgreSQL -------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(served_dir: Any) -> None:
    config = LongtailConfig.model_validate({"serve": {"rate_limit_per_second": 0.01, "rate_limit_burst": 3, "sqlite_path": str(served_dir / "limited.db")}})
    served = open_served(served_dir, config)
    keys = make_keys(served.store)
    with LiveServer(create_app(config, served.services, served.store)) as server, httpx.Client(base_url=server.url) as http:
        headers = {"Authorization": f"Bearer {keys['read']}"}
        statuses = [http.post("/search", json={"query": "glue"}, headers=headers).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = http.post("/search", json={"query": "glue"}, headers=headers)
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        other = {"Authorization": f"Bearer {keys['admin']}"}  # buckets are per key
        assert http.post("/search", json={"query": "glue"}, headers=other).status_code == 200
        assert "longtail_rate_limited_total 2.0" in http.get("/metrics", headers=other).text
    served.store.close()


def test_the_api_runs_on_postgresql(served_dir: Any, postgres: Any) -> None:
    config = LongtailConfig.model_validate({"serve": {"store": "postgres", "postgres_dsn": fresh_postgres_dsn(postgres)}})
    served = open_served(served_dir, config)
    assert served.seeded_events == served.store.count() > 0
    keys = make_keys(served.store)
    with LiveServer(create_app(config, served.services, served.store)) as server, httpx.Client(base_url=server.url) as http:
        write, admin, read = ({"Authorization": f"Bearer {keys[k]}"} for k in ("write", "admin", "read"))
        before = served.store.count()
        response = http.post("/events", json={"events": [{"user_id": "pg-u", "item_id": ITEM, "event_type": "add_to_cart"}] * 2}, headers=write)
        assert response.status_code == 201 and served.store.count() == before + 2
        bad = http.post(
            "/events",
            json={"events": [{"user_id": "pg-u", "item_id": ITEM, "event_type": "view"}, {"user_id": "pg-u", "item_id": INJECTION, "event_type": "view"}]},
            headers=write,
        )
        assert bad.status_code == 422 and served.store.count() == before + 2
        assert http.get("/users/pg-u/profile", headers=read).json()["event_types"] == {"add_to_cart": 2}
        assert http.delete("/users/pg-u", headers=admin).json()["events_deleted"] == 2
        assert http.get("/health").json()["store"] == "PostgresEventStore"
    served.store.close()


def test_processes_sharing_postgresql_see_each_others_items(served_dir: Any, postgres: Any) -> None:
    config = LongtailConfig.model_validate({"serve": {"store": "postgres", "postgres_dsn": fresh_postgres_dsn(postgres), "popularity_refresh_seconds": 0}})
    first, second = open_served(served_dir, config), open_served(served_dir, config)  # as two server processes would
    keys = make_keys(first.store)
    admin, write, read = ({"Authorization": f"Bearer {keys[k]}"} for k in ("admin", "write", "read"))
    with LiveServer(create_app(config, first.services, first.store)) as one, LiveServer(create_app(config, second.services, second.store)) as two:
        item = {"item_id": "shared-1", "title": "Qwertz shared catalogue item"}
        assert httpx.post(f"{one.url}/items", json={"items": [item]}, headers=admin).status_code == 200
        event = {"user_id": "shared-u", "item_id": "shared-1", "event_type": "view"}
        assert httpx.post(f"{two.url}/events", json={"events": [event]}, headers=write).status_code == 201
        hits = httpx.post(f"{two.url}/search", json={"query": "qwertz"}, headers=read).json()["items"]
        assert [hit["item_id"] for hit in hits] == ["shared-1"]
    first.store.close()
    second.store.close()
