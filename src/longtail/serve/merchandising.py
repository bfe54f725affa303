"""Merchandising rules: pin, boost, bury or hide items for a query or category, stored with an audit trail, applied after ranking."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from longtail.core.errors import StoreError, UnknownIdError
from longtail.search.suggest import normalise
from longtail.serve.schemas import AppliedRule, ItemHit, SearchRequest, SearchResponse
from longtail.serve.services import Services
from longtail.serve.store import EventStore, from_micros, to_micros
from longtail.serve.text import Identifier, ShortText

Action = Literal["pin", "boost", "bury", "hide"]
_RULE_COLUMNS = "id, action, query, category, item_id, position, factor, starts_us, ends_us, note, created_by, created_us, deleted_us"


class RuleIn(BaseModel):
    """A rule to create: what to do to which item, for one query (matched case- and punctuation-insensitively) or one
    category (searches filtered to it or a sub-category), between optional start and end times."""

    model_config = ConfigDict(extra="forbid")

    action: Action
    item_id: Identifier
    query: ShortText | None = None
    category: ShortText | None = None
    position: int = Field(1, ge=1, le=100, description="pin: the 1-based place the item takes")
    factor: float = Field(2.0, gt=1, le=1000, allow_inf_nan=False, description="boost: the item's score is multiplied by this")
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    note: ShortText = Field("", description="why the rule exists, for the audit trail")

    @model_validator(mode="after")
    def _one_scope(self) -> RuleIn:
        if (self.query is None) == (self.category is None):
            raise ValueError("give exactly one of query or category")
        if self.query is not None and not normalise(self.query):
            raise ValueError("query must contain a letter or digit")
        for name in ("starts_at", "ends_at"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise ValueError(f"{name} must carry a time zone, e.g. 2026-01-01T00:00:00Z")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Rule(RuleIn):
    """A stored rule: who created it and when, and when it was deleted (if it was)."""

    id: int
    created_by: str
    created_at: datetime
    deleted_at: datetime | None = None

    def active(self, moment: datetime) -> bool:
        """Not deleted and within its time window at this moment."""
        return self.deleted_at is None and (self.starts_at is None or self.starts_at <= moment) and (self.ends_at is None or moment < self.ends_at)

    def matches(self, request: SearchRequest) -> bool:
        """True when the rule is about this search's query or the category it is filtered to."""
        if self.query is not None:
            return normalise(self.query) == normalise(request.query)
        wanted, filtered = (self.category or "").lower(), (request.category or "").lower()
        return bool(filtered) and (filtered == wanted or filtered.startswith(wanted + " >"))


class AuditEntry(BaseModel):
    """One change to the rules: which rule, created or deleted, by which API key, when, and the rule as it was."""

    rule_id: int
    change: Literal["create", "delete"]
    actor: str
    at: datetime
    rule: Rule


def _rule(row: tuple) -> Rule:
    (rule_id, action, query, category, item_id, position, factor, starts, ends, note, by, created, deleted) = row
    return Rule(
        id=rule_id,
        action=action,
        query=query,
        category=category,
        item_id=item_id,
        position=position or 1,
        factor=factor or 2.0,
        starts_at=None if starts is None else from_micros(starts),
        ends_at=None if ends is None else from_micros(ends),
        note=note,
        created_by=by,
        created_at=from_micros(created),
        deleted_at=None if deleted is None else from_micros(deleted),
    )


class RuleBook:
    """Rules in the event store (SQLite or PostgreSQL); each change is written with its audit entry in one transaction.

    Searches read a copy of the rules refreshed every `refresh_seconds` (at once after a change made here), so other
    server processes sharing the store pick changes up within that time."""

    def __init__(self, store: EventStore, refresh_seconds: float = 5.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._cached: tuple[float, list[Rule]] = (float("-inf"), [])
        self._lock = threading.Lock()

    def _changed(self, rule_id: int, change: str, actor: str, cursor: Any) -> None:
        rule = self._load(rule_id, cursor)
        cursor.execute(
            self.store._sql("INSERT INTO merch_audit (rule_id, change, actor, at_us, record) VALUES (?, ?, ?, ?, ?)"),
            (rule_id, change, actor, to_micros(datetime.now(UTC)), rule.model_dump_json()),
        )

    def _load(self, rule_id: int, cursor: Any) -> Rule:
        cursor.execute(self.store._sql(f"SELECT {_RULE_COLUMNS} FROM merch_rules WHERE id = ?"), (rule_id,))
        return _rule(cursor.fetchone())

    def _transaction(self) -> AbstractContextManager[Any]:
        # The store's own transaction: the rule and its audit entry commit together or not at all.
        return self.store._transaction(self.store._connection())

    def create(self, rule: RuleIn, actor: str) -> Rule:
        """Store a rule and its audit entry; the rule applies from its start time."""
        values = (
            rule.action,
            rule.query,
            rule.category,
            rule.item_id,
            rule.position,
            rule.factor,
            None if rule.starts_at is None else to_micros(rule.starts_at),
            None if rule.ends_at is None else to_micros(rule.ends_at),
            rule.note,
            actor,
            to_micros(datetime.now(UTC)),
        )
        try:
            with self._transaction() as cursor:
                cursor.execute(
                    self.store._sql(
                        "INSERT INTO merch_rules (action, query, category, item_id, position, factor, starts_us, ends_us, note, created_by, created_us)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
                    ),
                    values,
                )
                rule_id = cursor.fetchone()[0]
                self._changed(rule_id, "create", actor, cursor)
                stored = self._load(rule_id, cursor)
        except self.store.database_errors as error:
            raise StoreError(f"cannot store the rule: {error}") from error
        self._cached = (float("-inf"), [])
        return stored

    def delete(self, rule_id: int, actor: str) -> Rule:
        """Mark a rule deleted (it stays, for the audit trail); UnknownIdError when no live rule has this id."""
        try:
            with self._transaction() as cursor:
                statement = "UPDATE merch_rules SET deleted_us = ? WHERE id = ? AND deleted_us IS NULL"
                cursor.execute(self.store._sql(statement), (to_micros(datetime.now(UTC)), rule_id))
                if cursor.rowcount != 1:
                    raise UnknownIdError(f"no rule with id {rule_id} (or it was already deleted)")
                self._changed(rule_id, "delete", actor, cursor)
                deleted = self._load(rule_id, cursor)
        except self.store.database_errors as error:
            raise StoreError(f"cannot delete the rule: {error}") from error
        self._cached = (float("-inf"), [])
        return deleted

    def rules(self, include_deleted: bool = False) -> list[Rule]:
        """Stored rules, oldest first."""
        where = "" if include_deleted else " WHERE deleted_us IS NULL"
        return [_rule(row) for row in self.store._read(f"SELECT {_RULE_COLUMNS} FROM merch_rules{where} ORDER BY id")]

    def audit(self, limit: int = 200) -> list[AuditEntry]:
        """The latest changes, newest first."""
        rows = self.store._read("SELECT rule_id, change, actor, at_us, record FROM merch_audit ORDER BY id DESC LIMIT ?", (limit,))
        return [AuditEntry(rule_id=r[0], change=r[1], actor=r[2], at=from_micros(r[3]), rule=Rule.model_validate(json.loads(r[4]))) for r in rows]

    def active(self, moment: datetime | None = None) -> list[Rule]:
        """Rules in force now (from a copy at most refresh_seconds old)."""
        moment = moment or datetime.now(UTC)
        read_at, rules = self._cached
        if time.monotonic() - read_at > self.refresh_seconds:
            with self._lock:
                rules = self.rules()
                self._cached = (time.monotonic(), rules)
        return [rule for rule in rules if rule.active(moment)]


def apply_rules(response: SearchResponse, rules: list[Rule], k: int, lookup: Callable[[str], ItemHit | None]) -> SearchResponse:
    """The response with rules applied after ranking: hidden items removed, boosted scores multiplied and re-sorted,
    buried items moved last, pinned items placed (fetched by `lookup` when the ranking missed them); cut to k."""
    if not rules:
        return response
    hidden = {rule.item_id for rule in rules if rule.action == "hide"}
    factors = {rule.item_id: rule.factor for rule in rules if rule.action == "boost"}
    buried = {rule.item_id for rule in rules if rule.action == "bury"}
    items = [hit for hit in response.items if hit.item_id not in hidden]
    removed = len(response.items) - len(items)
    boosted = [hit.model_copy(update={"score": round(hit.score * factors[hit.item_id], 6)}) if hit.item_id in factors else hit for hit in items]
    # Results arrive best first, so a stable sort by score keeps the ranker's order except where a boost moved an item.
    ranked = sorted(boosted, key=lambda hit: (hit.item_id in buried, -hit.score))
    for rule in sorted((r for r in rules if r.action == "pin" and r.item_id not in hidden), key=lambda r: r.position):
        found = next((hit for hit in ranked if hit.item_id == rule.item_id), None) or lookup(rule.item_id)
        if found is None:
            continue
        ranked = [hit for hit in ranked if hit.item_id != rule.item_id]
        ranked.insert(min(rule.position - 1, len(ranked)), found)
    shown = ranked[:k]
    positions = {hit.item_id: place for place, hit in enumerate(shown, start=1)}
    applied = [AppliedRule(rule_id=rule.id, action=rule.action, item_id=rule.item_id, position=positions.get(rule.item_id)) for rule in rules]
    return response.model_copy(update={"items": shown, "rules": applied, "total": max(response.total - removed, len(shown))})


def merchandised_search(rulebook: RuleBook, services: Services, request: SearchRequest) -> SearchResponse:
    """Search, then apply the rules in force for this query or category; enough extra results are asked for that
    hiding or burying items still leaves k to show."""
    rules = [rule for rule in rulebook.active() if rule.matches(request)]
    if not rules:
        return services.search(request)
    # model_copy skips validation on purpose: the extra results may exceed the k a client may ask for.
    response = services.search(request.model_copy(update={"k": request.k + len(rules)}))
    return apply_rules(response, rules, request.k, lambda item_id: _catalogue_hit(services, item_id))


def _catalogue_hit(services: Services, item_id: str) -> ItemHit | None:
    item = services.catalogue.get(item_id)
    if item is None:
        return None
    return ItemHit(item_id=item.item_id, title=item.title, category=item.category, brand=item.brand, price=item.price, score=0.0)
