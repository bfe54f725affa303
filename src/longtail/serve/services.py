"""The contract between the API and whatever answers it: search, recommendations, similar items, profiles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from longtail.core.lru import CacheStats
from longtail.serve.catalogue import Catalogue
from longtail.serve.events import StoredEvent
from longtail.serve.schemas import (
    ItemIn,
    Profile,
    Recommendations,
    SearchRequest,
    SearchResponse,
    SimilarItems,
)


class Services(Protocol):
    """What the API needs from the search, recommendation and profile models; raise UnknownIdError for unknown ids."""

    @property
    def catalogue(self) -> Catalogue:
        """The served catalogue, for autocomplete and for showing pinned items."""

    def search(self, request: SearchRequest) -> SearchResponse:
        """Rank catalogue items for a query, with facet counts."""

    def recommend(self, user_id: str, k: int) -> Recommendations:
        """Recommend k items to a user (a user with no events gets cold-start recommendations)."""

    def similar(self, item_id: str, k: int) -> SimilarItems:
        """k items similar to a known item."""

    def profile(self, user_id: str) -> Profile:
        """The profile of a user who has events."""

    def unknown_items(self, item_ids: Iterable[str]) -> list[str]:
        """The ids among these that are not in the catalogue, so events cannot reference items that do not exist."""

    def upsert_items(self, items: Sequence[ItemIn]) -> None:
        """Add or update items; they must be searchable and recommendable when this returns."""

    def observe(self, events: Sequence[StoredEvent]) -> None:
        """Learn from events just committed (e.g. update a profile online)."""

    def forget_user(self, user_id: str) -> None:
        """Drop everything derived from a user whose events were erased."""

    def model_version(self) -> str | None:
        """The version of the model folder answering, or None when no model folder is served."""

    def cache_stats(self) -> dict[str, CacheStats]:
        """The in-memory caches answering requests, by name (shown in /metrics)."""
