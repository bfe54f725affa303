"""Model-backed search with its caches: cached answers equal uncached ones, a catalogue change invalidates them,
personalised answers are never cached, and /metrics reports the caches' hits and misses."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.serve.app import create_app
from longtail.serve.loading import Served, open_served
from longtail.serve.model_services import ModelServices
from longtail.serve.schemas import ItemIn, SearchRequest

from conftest import LiveServer, make_keys, write_demo_slice

SLICE_USERS = 15
FAST = {"encode": {"encoder": "minilm-int8"}}
UNCACHED = {**FAST, "serve": {"query_cache_size": 0, "result_cache_size": 0, "batch_window_ms": 0}}
QUERIES = ["gloves", "glass beaker", "digital caliper", "safety glasses", "tape", "gloves", "glass  beaker", "drill bits"]


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """The first demo users' events, the items they touched, and a hybrid index over those items."""
    return write_demo_slice(tmp_path_factory.mktemp("cache-slice"), demo_data, SLICE_USERS, FAST)


def open_copy(slice_dir: Path, target: Path, settings: dict) -> Served:
    """The slice served from a directory (and store) of its own, with these settings."""
    target.mkdir(parents=True)
    for name in ("items.csv", "events.parquet"):
        shutil.copy(slice_dir / name, target / name)
    return open_served(target, LongtailConfig.model_validate(settings), slice_dir / "index")


@pytest.fixture
def both(slice_dir: Path, tmp_path: Path) -> Iterator[tuple[ModelServices, ModelServices]]:
    cached, uncached = open_copy(slice_dir, tmp_path / "cached", FAST), open_copy(slice_dir, tmp_path / "uncached", UNCACHED)
    assert isinstance(cached.services, ModelServices) and isinstance(uncached.services, ModelServices)
    yield cached.services, uncached.services
    cached.close()
    uncached.close()


def ranking(services: ModelServices, query: str, user_id: str | None = None) -> list[tuple[str, float]]:
    response = services.search(SearchRequest(query=query, k=10, user_id=user_id))
    return [(hit.item_id, hit.score) for hit in response.items]


def test_cached_search_ranks_exactly_as_uncached_search(both: tuple[ModelServices, ModelServices]) -> None:
    cached, uncached = both
    for _ in range(2):  # the second round is answered from the caches
        for query in QUERIES:
            assert ranking(cached, query) == ranking(uncached, query), query
    results, vectors = cached.cache_stats()["search_results"], cached.cache_stats()["query_vectors"]
    # 7 distinct requests ("glass  beaker" is another request text but the same query vector); then all 8 hit.
    assert (results.hits, results.misses, results.size) == (9, 7, 7)
    assert (vectors.misses, vectors.size) == (6, 6)
    assert uncached.cache_stats()["search_results"].size == 0 == uncached.cache_stats()["query_vectors"].size


def test_a_catalogue_change_invalidates_cached_answers(both: tuple[ModelServices, ModelServices]) -> None:
    cached, uncached = both
    before = ranking(cached, "zyxwv torque wrench")
    assert "zx-1" not in [item for item, _ in before]
    new = ItemIn(item_id="zx-1", title="Zyxwv titanium click torque wrench", brand="Zyxwv", category="Tools > Torque Wrenches", price=40.0)
    for services in both:
        services.upsert_items([new])
    after = ranking(cached, "zyxwv torque wrench")
    assert after[0][0] == "zx-1"
    assert after == ranking(uncached, "zyxwv torque wrench")


def test_personalised_answers_are_not_cached(both: tuple[ModelServices, ModelServices], slice_dir: Path) -> None:
    cached, uncached = both
    user = pl.read_parquet(slice_dir / "events.parquet")["user_id"][0]
    for _ in range(2):
        response = cached.search(SearchRequest(query="gloves", k=10, user_id=user))
        assert response.source == "model:hybrid+profile"
        assert ranking(cached, "gloves", user) == ranking(uncached, "gloves", user)
    assert cached.cache_stats()["search_results"].size == 0


def test_metrics_report_cache_hits_and_misses(slice_dir: Path, tmp_path: Path) -> None:
    served = open_copy(slice_dir, tmp_path / "served", FAST)
    key = make_keys(served.store)["read"]
    try:
        with (
            LiveServer(create_app(served.config, served.services, served.store)) as server,
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        ):
            for _ in range(3):
                assert http.post("/search", json={"query": "nitrile gloves", "k": 5}).status_code == 200
            text = http.get("/metrics").text
    finally:
        served.close()
    assert 'longtail_cache_hits_total{cache="search_results"} 2.0' in text
    assert 'longtail_cache_misses_total{cache="search_results"} 1.0' in text
    assert 'longtail_cache_misses_total{cache="query_vectors"} 1.0' in text
    assert 'longtail_cache_capacity{cache="query_vectors"} 4096.0' in text
