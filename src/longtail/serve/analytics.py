"""Search analytics over stored events: top, zero-result, low-CTR and mostly-tail queries, and the daily trend."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel, Field

from longtail.search.suggest import normalise
from longtail.serve.events import StoredEvent

# Events that count as a shopper acting on a result list.
ENGAGEMENTS = ("click", "add_to_cart", "purchase")
CLICK_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True)
class Outcome:
    """What the live index answers for a query: how many items matched, whether it had to relax, the items shown."""

    total: int
    relaxed: bool
    item_ids: tuple[str, ...]


class QueryStats(BaseModel):
    """One normalised query: searches, searches followed by an engagement, and how the index answers it now."""

    query: str
    searches: int
    clicked: int
    ctr: float
    zero_result: bool = Field(description="nothing matched every word (or nothing at all) as the index answers it now")
    tail_share: float = Field(description="share of the shown results that are tail items")


class Day(BaseModel):
    """Searches on one UTC day, how many were followed by an engagement, and how many were for zero-result queries."""

    day: str
    searches: int
    clicked: int
    zero_result: int


class SearchAnalytics(BaseModel):
    """The queries shoppers type, the ones that fail them, and how that changes day by day."""

    searches: int
    distinct_queries: int
    top: list[QueryStats]
    zero_result: list[QueryStats]
    low_ctr: list[QueryStats]
    mostly_tail: list[QueryStats]
    trend: list[Day]


def clicked_searches(events: Sequence[StoredEvent]) -> list[tuple[StoredEvent, bool]]:
    """Each search event, and whether the same user engaged with an item after it, before their next search and
    within CLICK_WINDOW."""
    by_user: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e.timestamp, e.id or 0)):
        by_user[event.user_id].append(event)
    found = []
    for stream in by_user.values():
        for i, event in enumerate(stream):
            if event.event_type != "search" or not event.query:
                continue
            clicked = False
            for later in stream[i + 1 :]:
                if later.event_type == "search" or later.timestamp - event.timestamp > CLICK_WINDOW:
                    break
                if later.event_type in ENGAGEMENTS and later.item_id is not None:
                    clicked = True
                    break
            found.append((event, clicked))
    return found


def _failed(answer: Outcome) -> bool:
    """A zero-result query: nothing matched, or nothing matched every word and the query had to be relaxed."""
    return answer.total == 0 or answer.relaxed


def search_analytics(
    events: Sequence[StoredEvent],
    outcome: Callable[[str], Outcome],
    tail_items: set[str],
    top: int = 20,
    min_searches: int = 3,
    low_ctr: float = 0.1,
    max_queries: int = 1000,
) -> SearchAnalytics:
    """Analytics over events (searches and engagements); `outcome` re-runs a query on the live index, for the
    `max_queries` most searched distinct queries (the per-query lists and the daily zero-result counts cover those)."""
    searches = clicked_searches(events)
    every: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for event, clicked in searches:
        query = normalise(event.query or "")
        every[query][0] += 1
        every[query][1] += clicked
    counts = dict(sorted(every.items(), key=lambda entry: (-entry[1][0], entry[0]))[:max_queries])
    outcomes = {query: outcome(query) for query in counts}
    stats = []
    for query, (n, engaged) in counts.items():
        shown = outcomes[query].item_ids
        stats.append(
            QueryStats(
                query=query,
                searches=n,
                clicked=engaged,
                ctr=round(engaged / n, 4),
                zero_result=_failed(outcomes[query]),
                tail_share=round(sum(item in tail_items for item in shown) / len(shown), 4) if shown else 0.0,
            )
        )
    stats.sort(key=lambda s: (-s.searches, s.query))
    days: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for event, clicked in searches:
        day = days[event.timestamp.date().isoformat()]
        day[0] += 1
        day[1] += clicked
        found = outcomes.get(normalise(event.query or ""))
        day[2] += found is not None and _failed(found)
    return SearchAnalytics(
        searches=len(searches),
        distinct_queries=len(every),
        top=stats[:top],
        zero_result=[s for s in stats if s.zero_result][:top],
        low_ctr=[s for s in stats if s.searches >= min_searches and s.ctr < low_ctr][:top],
        mostly_tail=[s for s in stats if s.tail_share > 0.5][:top],
        trend=[Day(day=day, searches=v[0], clicked=v[1], zero_result=v[2]) for day, v in sorted(days.items())],
    )


def analytics_csv(analytics: SearchAnalytics) -> str:
    """The per-query figures as CSV, one row per query with the lists it appears in."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["query", "searches", "clicked", "ctr", "zero_result", "tail_share", "lists"])
    rows: dict[str, tuple[QueryStats, list[str]]] = {}
    for name in ("top", "zero_result", "low_ctr", "mostly_tail"):
        for stats in getattr(analytics, name):
            rows.setdefault(stats.query, (stats, []))[1].append(name)
    for stats, lists in rows.values():
        writer.writerow([stats.query, stats.searches, stats.clicked, stats.ctr, stats.zero_result, stats.tail_share, " ".join(lists)])
    return out.getvalue()
