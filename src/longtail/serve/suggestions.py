"""The served suggester: built from the catalogue and the store's search events, rebuilt in the background when stale."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from longtail.search.suggest import LoggedQuery, Suggester, Suggestion
from longtail.serve.catalogue import Catalogue
from longtail.serve.store import EventStore

# Searches older than this weigh under 2^-12 of a fresh one at the default 30-day half-life: not worth reading.
LOG_DAYS = 365


class LiveSuggester:
    """Autocomplete over the live catalogue and past searches; a request never waits for a rebuild after the first."""

    def __init__(self, store: EventStore, catalogue: Callable[[], Catalogue], refresh_seconds: float = 60.0, half_life_days: float = 30.0) -> None:
        self.store = store
        # Asked for at each rebuild, not at construction: building the app never touches it, a rebuild sees the current one.
        self.catalogue = catalogue
        self.refresh_seconds = refresh_seconds
        self.half_life_days = half_life_days
        self._suggester: Suggester | None = None
        self._built_at = float("-inf")
        self._lock = threading.Lock()

    def _build(self) -> None:
        items = list(self.catalogue().snapshot().values())
        since = datetime.now(UTC) - timedelta(days=LOG_DAYS)
        log = [LoggedQuery(event.query, event.timestamp) for event in self.store.events(since, ["search"]) if event.query]
        suggester = Suggester.build([item.title for item in items], [item.brand for item in items], log, self.half_life_days)
        self._suggester, self._built_at = suggester, time.monotonic()

    def _rebuild_in_background(self) -> None:
        try:
            self._build()
        finally:
            self._lock.release()

    def suggest(self, text: str, k: int = 5) -> list[Suggestion]:
        """Completions of a typed prefix; the first call builds the suggester, later ones refresh it in a thread."""
        if self._suggester is None:
            with self._lock:
                if self._suggester is None:
                    self._build()
        elif time.monotonic() - self._built_at > self.refresh_seconds and self._lock.acquire(blocking=False):
            threading.Thread(target=self._rebuild_in_background, name="longtail-suggest-rebuild", daemon=True).start()
        assert self._suggester is not None
        return self._suggester.suggest(text, k)
