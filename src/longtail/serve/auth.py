"""API keys with scopes: created once, stored as salted SHA-256 digests, verified in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from longtail.core.errors import LongtailError
from longtail.core.lru import CacheStats, LruCache
from longtail.serve.store import EventStore, KeyRecord

Scope = Literal["read", "write_events", "admin"]
SCOPES: tuple[str, ...] = ("read", "write_events", "admin")
KEY_PREFIX = "lt"


class ApiKeyError(LongtailError):
    """An API key request names no scope or an unknown scope."""


@dataclass(frozen=True)
class Principal:
    """Who a verified key belongs to and what it may do."""

    key_id: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """admin may do everything; other scopes only themselves."""
        return scope in self.scopes or "admin" in self.scopes


def _digest(salt: str, secret: str) -> str:
    # The secret is 256 random bits, so one salted SHA-256 suffices; a slow password hash would only
    # add latency to every request without making a random key any harder to guess.
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def create_key(store: EventStore, scopes: Iterable[str], label: str = "") -> str:
    """Store a new key with these scopes and return it; this is the only time the full key exists."""
    wanted = tuple(dict.fromkeys(scopes))
    if not wanted:
        raise ApiKeyError("give at least one scope: " + ", ".join(SCOPES))
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    store.put_key(KeyRecord(key_id, salt, _digest(salt, secret), wanted, label, datetime.now(UTC)))
    return f"{KEY_PREFIX}_{key_id}_{secret}"


def verify_key(store: EventStore, presented: str) -> Principal | None:
    """The key's principal when it is well formed, known, not revoked and its secret matches; else None."""
    prefix, _, rest = presented.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not key_id or not secret or len(presented) > 200:
        return None
    record = store.get_key(key_id)
    if record is None or record.revoked_at is not None:
        return None
    if not hmac.compare_digest(record.digest, _digest(record.salt, secret)):
        return None
    return Principal(record.key_id, frozenset(record.scopes))


def key_id_of(key: str) -> str:
    """The public id part of a full key (what `keys revoke` takes)."""
    return key.split("_")[1] if key.count("_") >= 2 else key


class VerifiedKeys:
    """Principals of keys verified in the last `seconds`, so a request with a recently seen key skips the store look-up
    (and the thread-pool hop it needs). Only keys that passed `verify_key` are kept; a revoked key stops working here
    at most `seconds` after its revocation. Keyed by a digest of the presented key, never the key itself."""

    def __init__(self, seconds: float, capacity: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._cache: LruCache[str, tuple[Principal, float]] = LruCache(capacity if seconds > 0 else 0)

    def get(self, presented: str) -> Principal | None:
        """The principal of a key verified less than `seconds` ago, else None."""
        found = self._cache.get(hashlib.sha256(presented.encode()).hexdigest())
        return found[0] if found is not None and found[1] > self._clock() else None

    def put(self, presented: str, principal: Principal) -> None:
        """Remember a key that was just verified."""
        self._cache.put(hashlib.sha256(presented.encode()).hexdigest(), (principal, self._clock() + self.seconds))

    def stats(self) -> CacheStats:
        """Hits, misses, keys held and capacity."""
        return self._cache.stats()
