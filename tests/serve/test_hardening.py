"""Regression tests for the faults issue 16 found: each failed before its fix, against a real server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from conftest import Api

ITEM = "B0000223SI"  # in the demo catalogue


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
