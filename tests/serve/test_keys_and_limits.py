"""API keys are stored hashed and checked by scope; token buckets refill at their rate; the keys CLI prints a key once."""

from __future__ import annotations

import multiprocessing
import pickle
import shutil
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.core.config import LongtailConfig
from longtail.serve.auth import ApiKeyError, VerifiedKeys, create_key, verify_key
from longtail.serve.ratelimit import PROBES, BucketTable, RateLimiter
from longtail.serve.server import build_app
from longtail.serve.sqlite_store import SqliteEventStore

from conftest import LiveServer
from spawned import spend_tokens


@pytest.fixture
def store(tmp_path: Path) -> SqliteEventStore:
    return SqliteEventStore(tmp_path / "keys.db")


def test_a_key_is_stored_as_a_salted_digest_never_in_plain(store: SqliteEventStore, tmp_path: Path) -> None:
    key = create_key(store, ["read", "write_events"], "web shop")
    secret = key.split("_", 2)[2]
    record = store.keys()[0]
    assert record.scopes == ("read", "write_events") and record.label == "web shop"
    assert secret not in record.digest and len(record.digest) == 64
    assert secret.encode() not in (tmp_path / "keys.db").read_bytes() + (tmp_path / "keys.db-wal").read_bytes()
    other = create_key(store, ["read"])
    assert store.keys()[1].salt != record.salt and other != key


def test_verification_accepts_only_the_exact_live_key(store: SqliteEventStore) -> None:
    key = create_key(store, ["read"])
    principal = verify_key(store, key)
    assert principal is not None and principal.allows("read") and not principal.allows("admin")
    assert verify_key(store, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert verify_key(store, "lt_" + "0" * 16 + "_secret") is None
    assert verify_key(store, "garbage") is None
    store.revoke_key(principal.key_id)
    assert verify_key(store, key) is None


def test_admin_implies_every_scope(store: SqliteEventStore) -> None:
    principal = verify_key(store, create_key(store, ["admin"]))
    assert principal is not None and all(principal.allows(scope) for scope in ("read", "write_events", "admin"))


def test_unknown_or_missing_scopes_are_refused(store: SqliteEventStore) -> None:
    with pytest.raises(ApiKeyError, match="unknown scope"):
        create_key(store, ["read", "superuser"])
    with pytest.raises(ApiKeyError, match="at least one scope"):
        create_key(store, [])
    assert store.keys() == []


def test_token_bucket_allows_a_burst_then_refills_at_its_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_second=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("k") == pytest.approx(0.5)
    assert limiter.acquire("other") == 0.0  # one bucket per key
    now[0] = 0.5
    assert limiter.acquire("k") == 0.0
    assert limiter.acquire("k") > 0
    now[0] = 100.0
    assert [limiter.acquire("k") for _ in range(4)][-1] > 0  # refills only up to the burst


def test_processes_sharing_a_table_spend_one_bucket_per_key() -> None:
    context = multiprocessing.get_context("spawn")
    table, allowed = BucketTable.shared(context, slots=64), context.Value("i", 0)
    workers = [context.Process(target=spend_tokens, args=(table, 8, allowed)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0, 0]
    assert allowed.value == 10  # 24 tries over three processes, one burst of 10 in all
    assert RateLimiter(rate_per_second=1e-6, burst=10, table=table).acquire("k") > 0  # this process sees it spent too
    with pytest.raises(TypeError, match="only a shared"):
        pickle.dumps(BucketTable.local())


def test_a_full_table_reuses_the_bucket_refilled_longest_ago() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_second=1e-6, burst=1, clock=lambda: now[0], table=BucketTable.local(slots=PROBES))
    for key in range(PROBES):
        now[0] = float(key)
        assert limiter.acquire(f"k{key}") == 0.0
    assert limiter.acquire("k3") > 0  # still held
    now[0] = 100.0
    assert limiter.acquire("newcomer") == 0.0  # takes k0's slot, the stalest
    assert limiter.acquire("k0") == 0.0  # k0 starts again from a full burst
    assert limiter.acquire("k5") > 0


def test_keys_cli_prints_the_key_once_and_revokes_it(tmp_path: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--data", str(tmp_path), "--scope", "read", "--scope", "write_events"])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    with SqliteEventStore(tmp_path / "longtail.db") as store:
        principal = verify_key(store, key)
        assert principal is not None and principal.scopes == {"read", "write_events"}
    listed = runner.invoke(app, ["keys", "list", "--data", str(tmp_path)])
    assert principal.key_id in listed.stdout and key.split("_", 2)[2] not in listed.stdout
    assert runner.invoke(app, ["keys", "revoke", principal.key_id, "--data", str(tmp_path)]).exit_code == 0
    assert runner.invoke(app, ["keys", "revoke", principal.key_id, "--data", str(tmp_path)]).exit_code == 2
    bad = runner.invoke(app, ["keys", "create", "--data", str(tmp_path), "--scope", "root"])
    assert bad.exit_code == 2 and "unknown scope" in bad.output


def test_a_verified_key_is_trusted_for_its_seconds_then_looked_up_again(store: SqliteEventStore) -> None:
    now = [100.0]
    verified = VerifiedKeys(seconds=1.0, clock=lambda: now[0])
    key = create_key(store, ["read"])
    principal = verify_key(store, key)
    assert principal is not None and verified.get(key) is None
    verified.put(key, principal)
    store.revoke_key(principal.key_id)
    now[0] += 0.9
    assert verified.get(key) == principal  # revoked, but verified 0.9 s ago: within the window
    now[0] += 0.2
    assert verified.get(key) is None and verify_key(store, key) is None  # past it: the store says revoked
    assert verified.get("lt_" + "0" * 16 + "_other") is None


def test_with_no_seconds_no_key_is_kept(store: SqliteEventStore) -> None:
    verified = VerifiedKeys(seconds=0)
    key = create_key(store, ["read"])
    principal = verify_key(store, key)
    assert principal is not None
    verified.put(key, principal)
    assert verified.get(key) is None and verified.stats().capacity == 0


def test_a_revoked_key_is_refused_by_the_api_within_the_key_cache_seconds(served_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(served_dir, data)
    app, served = build_app(data, LongtailConfig.model_validate({"serve": {"key_cache_seconds": 0.5}}))
    key = create_key(served.store, ["read"])
    try:
        with LiveServer(app) as live, httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}) as client:
            assert client.get("/users/nobody/recommendations").status_code == 200
            served.store.revoke_key(key.split("_")[1])
            revoked_at = time.monotonic()
            while client.get("/users/nobody/recommendations").status_code == 200:
                assert time.monotonic() - revoked_at < 0.5 + 0.5  # trusted no longer than its seconds (and a request's time)
            assert client.get("/users/nobody/recommendations").json()["error"]["code"] == "invalid_api_key"
    finally:
        served.close()
