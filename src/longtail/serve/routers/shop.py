"""Routes for running a shop's search: autocomplete, merchandising rules with their audit trail, search analytics."""

# No `from __future__ import annotations` here: FastAPI reads the route closures' annotations at runtime.

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParameter
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from longtail.core.errors import UnknownIdError
from longtail.data.segments import TAIL, item_segments
from longtail.search.suggest import Source
from longtail.serve.analytics import (
    ENGAGEMENTS,
    Outcome,
    SearchAnalytics,
    analytics_csv,
    search_analytics,
)
from longtail.serve.auth import key_id_of
from longtail.serve.because import because_you_viewed
from longtail.serve.console import ConsoleSnapshot, console_snapshot
from longtail.serve.merchandising import AuditEntry, Rule, RuleBook, RuleIn
from longtail.serve.schemas import ItemHit, SearchRequest
from longtail.serve.services import Services
from longtail.serve.store import EventStore
from longtail.serve.suggestions import LiveSuggester
from longtail.serve.text import Identifier, ShortText

# Analytics re-run each distinct query on the live index; this many of the most frequent are enough to act on.
ANALYSED_QUERIES = 1000
RECENT_EVENTS = 50  # how far back "because you viewed" looks
MAX_RULE_ID = 2**62  # larger ids cannot exist in either store's BIGINT, and would overflow the driver


class SuggestionOut(BaseModel):
    """One completion and where it came from (a past query, a catalogue phrase or a brand)."""

    text: str
    source: Source
    corrected: bool


class Suggestions(BaseModel):
    """Completions of what was typed, best first."""

    query: str
    suggestions: list[SuggestionOut]


class Reason(BaseModel):
    """The viewed item a recommendation follows from."""

    item_id: str
    title: str


class ExplainedHit(BaseModel):
    """A recommendation and, when one is found, the item of the user's history behind it."""

    item: ItemHit
    because: Reason | None


class ExplainedRecommendations(BaseModel):
    """Recommendations with "because you viewed …" reasons."""

    user_id: str
    items: list[ExplainedHit]
    source: str


def _actor(request: Request) -> str:
    """The id of the API key that made the request (the route already verified it)."""
    return "key:" + key_id_of(request.headers.get("authorization", "").partition(" ")[2])


def shop_router(
    services: Services,
    store: EventStore,
    rulebook: RuleBook,
    needs: Callable[[str], dict[str, Any]],
    route_class: type[APIRoute],
    stored_id: Callable[[str], str],
    reports_dir: Path | None = None,
    suggest_refresh_seconds: float = 60.0,
) -> APIRouter:
    """The routes, checked by the app's scoped route class."""
    router = APIRouter(route_class=route_class)
    suggester = LiveSuggester(store, lambda: services.catalogue, suggest_refresh_seconds)

    @router.get("/suggest", tags=["search"], **needs("read"))
    def suggest(q: Annotated[ShortText, Query(description="what the shopper typed so far")], k: Annotated[int, Query(ge=1, le=20)] = 8) -> Suggestions:
        """Completions from past queries (frequency and recency weighted, zero-result ones left out), catalogue phrases
        and brands; a one-letter typo in a prefix of 4+ letters is tolerated; Chinese prefixes work."""
        found = suggester.suggest(q, k)
        return Suggestions(query=q, suggestions=[SuggestionOut(text=s.text, source=s.source, corrected=s.corrected) for s in found])

    @router.get("/merchandising/rules", tags=["merchandising"], **needs("admin"))
    def list_rules(deleted: bool = False) -> list[Rule]:
        """Stored rules, oldest first (with deleted ones when asked)."""
        return rulebook.rules(include_deleted=deleted)

    @router.post("/merchandising/rules", status_code=201, tags=["merchandising"], **needs("admin"))
    def create_rule(rule: RuleIn, request: Request) -> Rule:
        """Pin, boost, bury or hide an item for a query or a category, optionally between two times; audited."""
        if services.catalogue.get(rule.item_id) is None:
            raise UnknownIdError(f"unknown item_id {rule.item_id!r}; post the item first")
        return rulebook.create(rule, _actor(request))

    @router.delete("/merchandising/rules/{rule_id}", tags=["merchandising"], **needs("admin"))
    def delete_rule(rule_id: Annotated[int, PathParameter(ge=1, le=MAX_RULE_ID)], request: Request) -> Rule:
        """Delete a rule (it stays listed with `deleted=true` and in the audit trail)."""
        return rulebook.delete(rule_id, _actor(request))

    @router.get("/merchandising/audit", tags=["merchandising"], **needs("admin"))
    def audit(limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditEntry]:
        """Who created or deleted which rule, when, newest first."""
        return rulebook.audit(limit)

    def outcome(query: str) -> Outcome:
        answer = services.search(SearchRequest.model_validate({"query": query, "k": 10}))
        return Outcome(answer.total, answer.relaxed is not None, tuple(hit.item_id for hit in answer.items))

    def tail_items() -> set[str]:
        ids = list(services.catalogue.snapshot())
        counts = dict(store.popular_items(max(len(ids), 1) * 2))
        labels = item_segments(np.array([counts.get(item_id, 0) for item_id in ids], dtype=np.int64))
        return {item_id for item_id, label in zip(ids, labels, strict=True) if label == TAIL}

    @router.get("/analytics/search", tags=["analytics"], response_model=SearchAnalytics, responses={200: {"content": {"text/csv": {}}}}, **needs("admin"))
    def analytics(
        days: Annotated[int, Query(ge=1, le=3650)] = 30, top: Annotated[int, Query(ge=1, le=500)] = 20, format: Literal["json", "csv"] = "json"
    ) -> Any:
        """Top, zero-result, low-CTR and mostly-tail queries and the daily trend over the last `days` days of events;
        `format=csv` gives the per-query rows as CSV."""
        since = datetime.now(UTC) - timedelta(days=days)
        events = store.events(since=since, event_types=["search", *ENGAGEMENTS])
        result: SearchAnalytics = search_analytics(events, outcome, tail_items(), top=top, max_queries=ANALYSED_QUERIES)
        if format == "csv":
            return Response(analytics_csv(result), media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="search-analytics.csv"'})
        return result

    @router.get("/users/{user_id}/recommendations/explained", tags=["users"], **needs("read"))
    def explained(
        user_id: Annotated[Identifier, PathParameter(description="user id")], k: Annotated[int, Query(ge=1, le=100)] = 10
    ) -> ExplainedRecommendations:
        """The user's recommendations, each with the most recent item they touched of its category (else brand)."""
        stored = stored_id(user_id)
        recommended = services.recommend(stored, k)
        touched = [item for event in store.user_events(stored, RECENT_EVENTS) if event.item_id and (item := services.catalogue.get(event.item_id))]
        reasons = because_you_viewed(recommended.items, touched)
        items = [
            ExplainedHit(item=hit, because=None if reason is None else Reason(item_id=reason.item_id, title=reason.title))
            for hit, reason in zip(recommended.items, reasons, strict=True)
        ]
        return ExplainedRecommendations(user_id=user_id, items=items, source=recommended.source)

    @router.get("/console", tags=["operations"], **needs("admin"))
    def console() -> ConsoleSnapshot:
        """The operator console: audit, imbalance and evaluation reports beside the served data, the live model, the rules."""
        return console_snapshot(reports_dir, services, rulebook.rules())

    return router
