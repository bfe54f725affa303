"""Serving a model folder through a real uvicorn server: the API answers with the evaluated recommender's own scores,
cold users fall back visibly, replay scores what users get, and `longtail update`-style swaps drop no request."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest

from concurrent_calls import call_at_once
from longtail.core.config import IntentConfig, LongtailConfig, RecommendConfig, SequentialConfig
from longtail.data.adapters import load_dataset
from longtail.encode.item_text import texts_for
from longtail.models.fusion import FusionRanker
from longtail.models.intent import INTENTS, IntentModel, intent_table
from longtail.pipeline.incremental import train_model_folder
from longtail.pipeline.model_folder import (
    HISTORY_FILE,
    ModelFolder,
    evaluate_folder,
    folder_split,
    load_model_folder,
    sample_test_users,
    write_model_folder,
)
from longtail.pipeline.replay import replay
from longtail.serve.events import StoredEvent
from longtail.serve.loading import open_served
from longtail.serve.recommending import COLD_SOURCE, FolderServices
from longtail.serve.schemas import SearchRequest
from longtail.serve.server import build_app, limit_compute_threads

import builders
from conftest import LiveServer, make_keys

TINY = SequentialConfig(hidden=16, blocks=1, heads=1, max_len=20, dropout=0.2, epochs=3, patience=2, lr=3e-3, threads=1)
RANKED = LongtailConfig(recommend=RecommendConfig(sequential=TINY, fusion_candidates=20, fusion_trees=20, bootstrap_samples=50))
SERVE = LongtailConfig.model_validate({"serve": {"model_reload_seconds": 0.2, "rate_limit_per_second": 10_000, "rate_limit_burst": 10_000}})


def _hashed_encoder(items: pl.DataFrame):
    from sklearn.feature_extraction.text import HashingVectorizer

    hashing = HashingVectorizer(n_features=128, alternate_sign=False)
    return lambda item_ids: hashing.transform(texts_for(item_ids, items)).toarray().astype(np.float32)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, datasets_root) -> Path:
    """A fusion model folder trained on 300 real Scientific users (their items only)."""
    data = load_dataset("scientific", datasets_root)
    items, events = builders.first_users(data.items, data.events, 300)
    target = tmp_path_factory.mktemp("served") / "model"
    intent = IntentModel(IntentConfig(trees=20, min_child_samples=5)).fit(intent_table(items, events, IntentConfig())).save(target.parent / "intent_model.json")
    train_model_folder(items, events, RANKED, target, _hashed_encoder(items), fusion=True, evaluation_users=40, intent=intent)
    items.write_parquet(target.parent / "items.parquet")  # the served directory: the catalogue, no events
    return target


def _served_copy(model_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A served directory holding the folder's catalogue, and a copy of the model folder (so a test may replace it)."""
    import shutil

    served_model = tmp_path / "model"
    shutil.copytree(model_dir, served_model)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(model_dir.parent / "items.parquet", data / "items.parquet")
    return data, served_model


def _rewrite(folder_dir: Path, folder: ModelFolder, history_from: Path | None = None, index: Path | None = None) -> str:
    """Write `folder`'s model into `folder_dir` again (a new version, as `longtail train` would), with the history table
    of `history_from` (default: the folder itself); the version written."""
    history = pl.read_parquet((history_from or folder_dir) / HISTORY_FILE)
    return write_model_folder(
        folder_dir, folder.sequential, folder.item_ids, history, folder.config, folder.popularity, folder.recommender, None, folder.evaluation, index=index
    )  # type: ignore[arg-type]


def _swap_under_load(folder_dir: Path, folder: ModelFolder, clients: list[httpx.Client], user: str) -> tuple[list[tuple[int, str | None]], str]:
    """Ask for `user`'s recommendations from one thread per client in `clients` while the folder is written again; stop
    once every client's /health names the new version. The (status, model version) of every answer, and that version."""
    outcomes: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load(client: httpx.Client) -> None:
        while not stop.is_set():
            response = client.get(f"/users/{user}/recommendations", params={"k": 3})
            outcomes.append((response.status_code, response.json().get("model")))

    threads = [threading.Thread(target=load, args=(client,)) for client in clients]  # httpx clients are thread-safe
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    new = _rewrite(folder_dir, folder)
    deadline = time.monotonic() + 60
    while {client.get("/health").json()["model"] for client in clients} != {new} and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    return outcomes, new


@pytest.fixture()
def server(model_dir, tmp_path):
    """A fresh store over the catalogue, serving a copy of the model folder (so a test may replace it)."""
    data, served_model = _served_copy(model_dir, tmp_path)
    app, served = build_app(data, SERVE, model_dir=served_model)
    key = make_keys(served.store)["admin"]
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as client:
        yield client, served_model
    served.close()


def test_served_recommendations_are_the_offline_models_scores_for_the_same_sequence(server) -> None:
    client, folder_dir = server
    folder = load_model_folder(folder_dir)
    split = folder_split(folder_dir)
    history = pl.read_parquet(folder_dir / HISTORY_FILE)
    for user in sample_test_users(split, 3, 7).tolist():
        sequence = split.histories("test")[user]
        events = [
            {"user_id": "u", "item_id": folder.item_ids[item], "event_type": "review", "timestamp": f"2020-01-01T00:00:{second:02d}+00:00"}
            for second, item in enumerate(sequence.tolist())
        ]
        served_id = f"same-{user}"
        assert client.post("/events", json={"events": [{**e, "user_id": served_id} for e in events]}).status_code == 201
        answer = client.get(f"/users/{served_id}/recommendations", params={"k": 10}).json()
        top, scores = folder.recommend([sequence], 10)
        assert answer["source"] == "model:fusion" and answer["model"] == folder.version
        assert [hit["item_id"] for hit in answer["items"]] == [folder.item_ids[i] for i in top[0].tolist()]
        assert [hit["score"] for hit in answer["items"]] == pytest.approx(scores[0].tolist(), abs=1e-5)
    assert history.height > 0


def test_a_cold_user_gets_the_folders_popularity_and_is_told_so(server) -> None:
    client, folder_dir = server
    folder = load_model_folder(folder_dir)
    answer = client.get("/users/nobody-yet/recommendations", params={"k": 5}).json()
    assert answer["source"] == COLD_SOURCE
    counts = folder.popularity.counts_
    assert [hit["score"] for hit in answer["items"]] == sorted(counts.tolist(), reverse=True)[:5]


def test_similar_items_come_from_the_models_item_vectors(server) -> None:
    client, folder_dir = server
    folder = load_model_folder(folder_dir)
    item = folder.item_ids[3]
    answer = client.get(f"/items/{item}/similar", params={"k": 5}).json()
    assert answer["source"] == "model:sasrec-item-vectors"
    assert [hit["item_id"] for hit in answer["items"]] == [folder.item_ids[i] for i in folder.similar_items(3, 5).tolist()]


def test_replay_through_the_api_scores_as_the_offline_evaluation_of_the_same_users(server) -> None:
    client, folder_dir = server
    replayed = replay(client, folder_dir, 25, seed=3)
    split = folder_split(folder_dir)
    offline = evaluate_folder(load_model_folder(folder_dir), split, sample_test_users(split, 25, 3))
    assert replayed["users"] == 25 and replayed["sources"] == {"model:fusion": 25}
    assert replayed["metrics"]["NDCG@10"] == pytest.approx(offline.metrics["NDCG@10"], abs=1e-9)
    assert replayed["metrics"]["HR@10"] == pytest.approx(offline.metrics["HR@10"], abs=1e-9)


def test_the_profile_shows_the_intent_models_prediction_for_the_next_event(server, model_dir) -> None:
    client, folder_dir = server
    folder = load_model_folder(folder_dir)
    assert folder.intent is not None
    items = pl.read_parquet(model_dir.parent / "items.parquet")
    picks = folder.item_ids[:3]
    events = [
        {"user_id": "shopper", "item_id": item, "event_type": "view", "timestamp": f"2021-03-0{day + 1}T10:00:00+00:00"} for day, item in enumerate(picks)
    ]
    assert client.post("/events", json={"events": events}).status_code == 201
    prediction = client.get("/users/shopper/profile").json()["intent_prediction"]
    assert set(prediction) == set(INTENTS) and sum(prediction.values()) == pytest.approx(1.0, abs=1e-3)
    stored = pl.DataFrame(events).with_columns(pl.col("timestamp").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us"))
    offline = folder.intent.predict_next(items.select("item_id", "category", "brand"), stored, folder.counts_by_id, datetime.now(UTC))
    assert prediction == pytest.approx(offline, abs=2e-3)  # the time of the next event moves between the two calls


def test_a_swapped_folder_is_served_without_a_failed_request(server) -> None:
    client, folder_dir = server
    folder = load_model_folder(folder_dir)
    old = client.get("/health").json()["model"]
    assert old == folder.version
    outcomes, new = _swap_under_load(folder_dir, folder, [client] * 4, "nobody")
    assert outcomes and all(status == 200 for status, _ in outcomes)
    versions = [version for _, version in outcomes]
    assert versions[0] == old and versions[-1] == new and set(versions) == {old, new}
    assert client.get("/health").json()["model"] == new


@pytest.fixture()
def folder_services(model_dir, tmp_path):
    """The services of a served copy of the model folder, called directly (no HTTP), with a wide batching window."""
    data, served_model = _served_copy(model_dir, tmp_path)
    settings = LongtailConfig.model_validate({"serve": {"model_reload_seconds": 0, "batch_window_ms": 50}})
    served = open_served(data, settings, model_dir=served_model)
    assert isinstance(served.services, FolderServices) and served.model is not None
    yield served, served_model
    served.close()


def _post_history(served, user: str, item_ids: list[str]) -> None:
    events = [
        StoredEvent(user_id=user, item_id=item, event_type="review", timestamp=datetime(2020, 1, 1, 0, 0, second, tzinfo=UTC))
        for second, item in enumerate(item_ids)
    ]
    ids = served.store.append(events)
    served.services.observe([replace(event, id=event_id) for event, event_id in zip(events, ids, strict=True)])


@pytest.mark.parametrize(("concurrency", "max_batch"), [(1, 32), (2, 2)])
def test_concurrent_recommendations_are_scored_together_and_equal_one_by_one(folder_services, concurrency: int, max_batch: int) -> None:
    served, folder_dir = folder_services
    batcher = served.services._batcher
    batcher.concurrency, batcher.max_batch = concurrency, max_batch  # (2, 2): small batches, two scored at once
    folder = load_model_folder(folder_dir)
    split = folder_split(folder_dir)
    users = sample_test_users(split, 8, 11).tolist()
    for user in users:
        _post_history(served, f"c-{user}", [folder.item_ids[i] for i in split.histories("test")[user].tolist()])
    answers = call_at_once(lambda user: served.services.recommend(f"c-{user}", 10), users)
    assert batcher.batches < len(users) if max_batch > len(users) else batcher.batches >= len(users) // max_batch
    assert 1 <= batcher.most_running <= concurrency
    for user in users:
        top, scores = folder.recommend([split.histories("test")[user]], 10)
        assert [hit.item_id for hit in answers[user].items] == [folder.item_ids[i] for i in top[0].tolist()]
        assert [hit.score for hit in answers[user].items] == pytest.approx(scores[0].tolist(), abs=1e-5)


def test_cached_recommendations_change_with_a_new_event_and_with_a_swapped_folder(folder_services) -> None:
    served, folder_dir = folder_services
    folder = load_model_folder(folder_dir)
    _post_history(served, "cache-user", folder.item_ids[:4])
    first = served.services.recommend("cache-user", 10)
    assert served.services.recommend("cache-user", 10) == first
    stats = served.services.cache_stats()["recommendations"]
    assert (stats.hits, stats.misses) == (1, 1)
    _post_history(served, "cache-user", [first.items[0].item_id])  # the top item is now in the history: it must go
    after_event = served.services.recommend("cache-user", 10)
    assert first.items[0].item_id not in [hit.item_id for hit in after_event.items]
    new = _rewrite(folder_dir, folder)
    assert served.model.reload_if_changed()
    swapped = served.services.recommend("cache-user", 10)
    assert swapped.model == new != after_event.model
    assert served.services.cache_stats()["recommendations"].misses == 3


def test_the_served_ranker_scores_compiled_on_one_thread_with_the_offline_scores(folder_services) -> None:
    served, folder_dir = folder_services
    offline = load_model_folder(folder_dir)
    split = folder_split(folder_dir)
    histories = [split.histories("test")[user] for user in sample_test_users(split, 20, 3).tolist()]
    ranker = served.model.current.recommender
    assert isinstance(ranker, FusionRanker) and ranker.predict_threads == SERVE.serve.compute_threads == 1
    assert ranker.compiled_ is not None  # lleaves is installed: the served trees are native code
    assert isinstance(offline.recommender, FusionRanker) and offline.recommender.predict_threads == 0 and offline.recommender.compiled_ is None
    np.testing.assert_array_equal(served.model.current.score(histories), offline.score(histories))


def test_limit_compute_threads_sets_torchs_and_blass_thread_counts() -> None:
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    try:
        limit_compute_threads(1)
        assert torch.get_num_threads() == 1
        assert blas and all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
    finally:
        torch.set_num_threads(before)
        for pool in blas:
            threadpool_limits(limits=pool["num_threads"], user_api="blas")


def test_a_swapped_folder_switches_search_to_its_own_index_without_a_failed_search(model_dir, tmp_path) -> None:
    import shutil

    from longtail.search.engine import SearchEngine

    items = pl.read_parquet(model_dir.parent / "items.parquet")
    indexed = {"old": items.head(40), "new": items.slice(40, 40)}
    for name, part in indexed.items():
        SearchEngine.build(part, LongtailConfig.model_validate({"encode": {"encoder": "minilm-int8"}}), directory=tmp_path / name)
    folder = load_model_folder(model_dir)
    served_model = tmp_path / "model"
    shutil.copytree(model_dir, served_model)
    _rewrite(served_model, folder, model_dir, tmp_path / "old")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(model_dir.parent / "items.parquet", data / "items.parquet")
    settings = LongtailConfig.model_validate({"serve": {"model_reload_seconds": 0}})
    served = open_served(data, settings, model_dir=served_model)
    query = SearchRequest(query=" ".join(indexed["new"]["title"][0].split()[:3]), k=10)

    def found() -> set[str]:
        return {hit.item_id for hit in served.services.search(query).items}

    try:
        assert found() <= set(indexed["old"]["item_id"])
        failures: list[BaseException] = []
        stop = threading.Event()

        def search_on() -> None:
            while not stop.is_set():
                try:
                    found()
                except Exception as error:  # noted, so the test can say which search failed during the swap
                    failures.append(error)

        workers = [threading.Thread(target=search_on) for _ in range(3)]
        for worker in workers:
            worker.start()
        _rewrite(served_model, folder, model_dir, tmp_path / "new")
        assert served.model is not None and served.model.reload_if_changed()
        stop.set()
        for worker in workers:
            worker.join()
        assert not failures
        answered = found()
        assert answered and answered <= set(indexed["new"]["item_id"])
        assert indexed["new"]["item_id"][0] in answered
    finally:
        served.close()


def test_two_worker_processes_answer_from_one_store_and_both_take_a_swap_without_a_failed_request(model_dir, tmp_path) -> None:
    """`longtail serve --workers 2`: events posted to one process drive the other's recommendations (the offline scores for
    that sequence), rate limits hold for the server as a whole, a swapped folder reaches both with no failed request, and
    stopping the server stops both."""
    import json
    import subprocess
    import sys

    from longtail.serve.auth import create_key
    from longtail.serve.sqlite_store import SqliteEventStore

    from conftest import free_port

    data, served_model = _served_copy(model_dir, tmp_path)
    with SqliteEventStore(data / "longtail.db") as store:
        key = create_key(store, ["admin"])
    settings = tmp_path / "serve.yaml"
    settings.write_text(
        json.dumps(
            {
                "serve": {
                    "model_reload_seconds": 0.2,
                    "rate_limit_per_second": 10_000,
                    "rate_limit_burst": 10_000,
                    "invalid_key_rate_per_second": 0.01,
                    "invalid_key_burst": 6,
                }
            }
        )
    )
    port, log = free_port(), tmp_path / "server.log"
    command = [
        sys.executable,
        "-m",
        "longtail.cli",
        "serve",
        "--data",
        str(data),
        "--model",
        str(served_model),
        "--port",
        str(port),
        "--config",
        str(settings),
        "--workers",
        "2",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}
    clients: dict[int, httpx.Client] = {}
    try:
        deadline, up = time.monotonic() + 180, False
        while not up and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                up = httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(0.2)
        # Each keep-alive connection stays with the process the kernel gave it: open connections until both answered.
        for _ in range(64):
            client = httpx.Client(base_url=url, headers=headers, timeout=60)
            answering = client.get("/health").json()["process"]
            if answering in clients:
                client.close()
            else:
                clients[answering] = client
            if len(clients) == 2:
                break
        assert len(clients) == 2 and process.pid in clients, log.read_text()
        one, other = clients[process.pid], next(client for pid, client in clients.items() if pid != process.pid)

        folder = load_model_folder(served_model)
        sequence = folder_split(served_model).histories("test")[int(sample_test_users(folder_split(served_model), 1, 3)[0])]
        assert other.get("/users/both-u/recommendations", params={"k": 10}).json()["source"] == COLD_SOURCE
        events = [
            {"user_id": "both-u", "item_id": folder.item_ids[item], "event_type": "review", "timestamp": f"2020-01-01T00:00:{second:02d}+00:00"}
            for second, item in enumerate(sequence.tolist())
        ]
        assert one.post("/events", json={"events": events}).status_code == 201
        answer = other.get("/users/both-u/recommendations", params={"k": 10}).json()
        top, _ = folder.recommend([sequence], 10)
        assert answer["source"] == "model:fusion" and [hit["item_id"] for hit in answer["items"]] == [folder.item_ids[i] for i in top[0].tolist()]

        outcomes, new = _swap_under_load(served_model, folder, [one, other, one, other], "both-u")  # two threads per process
        assert outcomes and all(status == 200 for status, _ in outcomes)
        assert {version for _, version in outcomes} == {folder.version, new} and outcomes[-1][1] == new
        # Bad keys spend one bucket per client address across both processes (last: an empty one blocks the address):
        # 6 refusals by key lookup, then 429 from either process.
        bad = {"Authorization": "Bearer lt_unknown_secret"}
        statuses = [client.get("/users/both-u/profile", headers=bad).status_code for client in (one, other) * 5]
        assert statuses == [401] * 6 + [429] * 4
    finally:
        for client in clients.values():
            client.close()
        process.terminate()
        process.wait(timeout=60)
    with pytest.raises(httpx.TransportError):  # neither process is left holding the port
        httpx.get(f"{url}/health", timeout=2)
