"""Prometheus metrics of one app: requests and latency per route, events written, requests rate-limited."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from longtail.core.lru import CacheStats

# Buckets from 1 ms to 10 s: the API's answers are meant to take milliseconds, timeouts take seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ApiMetrics:
    """A registry per app (not the global one) so several apps in one process, e.g. in tests, never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("longtail_requests", "HTTP requests by route and status", ("method", "route", "status"), registry=self.registry)
        self.latency = Histogram("longtail_request_seconds", "Time to answer, by route", ("method", "route"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.events_written = Counter("longtail_events_written", "Events committed to the store", registry=self.registry)
        self.rate_limited = Counter("longtail_rate_limited", "Requests refused by the per-key rate limit", registry=self.registry)

    def watch_caches(self, read: Callable[[], Mapping[str, CacheStats]]) -> None:
        """Report these caches' hits, misses and sizes at every scrape (read then, so the figures are current)."""
        self.registry.register(CacheCollector(read))

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class CacheCollector(Collector):
    """Hits, misses, entries and capacity of the services' caches, labelled by cache name."""

    def __init__(self, read: Callable[[], Mapping[str, CacheStats]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        """One family per figure, one sample per cache."""
        caches = self.read()
        families: list[tuple[CounterMetricFamily | GaugeMetricFamily, Callable[[CacheStats], int]]] = [
            (CounterMetricFamily("longtail_cache_hits", "Look-ups answered from an in-memory cache", labels=["cache"]), lambda s: s.hits),
            (CounterMetricFamily("longtail_cache_misses", "Look-ups an in-memory cache could not answer", labels=["cache"]), lambda s: s.misses),
            (GaugeMetricFamily("longtail_cache_entries", "Entries an in-memory cache holds", labels=["cache"]), lambda s: s.size),
            (GaugeMetricFamily("longtail_cache_capacity", "Entries an in-memory cache may hold", labels=["cache"]), lambda s: s.capacity),
        ]
        for family, figure in families:
            for name, stats in caches.items():
                family.add_metric([name], figure(stats))
            yield family


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (/users/{user_id}/profile), not its raw path, and
    tells the client that time in a `Server-Timing: app;dur=<ms>` header."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                # The time the server spent on the request, so a load test can tell it from its own client's waits.
                timing = f"app;dur={(time.perf_counter() - started) * 1000:.2f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", timing)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route: Any = scope.get("route")
            # Unmatched paths share one label, so scanners cannot blow up the number of series.
            template = getattr(route, "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, template, str(status["code"])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)
