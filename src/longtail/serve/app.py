"""The FastAPI app factory: routes, scope checks, rate limits and one JSON error shape for every failure."""

# No `from __future__ import annotations` here: FastAPI reads the route closures' annotations at runtime.

import hashlib
import logging
import math
import os
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import replace
from importlib.resources import files
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from longtail.core.config import LongtailConfig, PrivacyConfig
from longtail.core.errors import (
    EventValidationError,
    IdempotencyKeyReusedError,
    PrivacyError,
    StoreError,
    UnknownIdError,
)
from longtail.privacy.erasure import scrub_reports
from longtail.privacy.pii import scrub_text
from longtail.privacy.pseudonym import pseudonymiser_from_config
from longtail.serve.auth import Principal, VerifiedKeys, verify_key
from longtail.serve.events import EventBatch, StoredEvent, validate_events
from longtail.serve.limits import BodyGuard, send_error
from longtail.serve.merchandising import RuleBook, merchandised_search
from longtail.serve.metrics import CONTENT_TYPE, ApiMetrics, MetricsMiddleware
from longtail.serve.ratelimit import LimitTables, RateLimiter
from longtail.serve.routers.shop import shop_router
from longtail.serve.schemas import (
    Erased,
    EventsWritten,
    Health,
    ItemBatch,
    ItemsWritten,
    Profile,
    Recommendations,
    SearchRequest,
    SearchResponse,
    SimilarItems,
)
from longtail.serve.services import Services
from longtail.serve.store import EventStore, Idempotency
from longtail.serve.text import Identifier

log = logging.getLogger("longtail.serve")
# Ids may contain '/': the server decodes %2F before routing, so the id routes take the rest of the path (`{...:path}`),
# or a user posted with such an id could be neither viewed nor erased.
UserId = Annotated[Identifier, Path(description="user id; percent-encode '/', '%', '?' and '#'")]
ItemId = Annotated[Identifier, Path(description="item id; percent-encode '/', '%', '?' and '#'")]
# The page builds its DOM with textContent only, loads its script and style from this server and talks only to this
# API, so a strict policy costs nothing: no inline code runs, even if markup were ever injected.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_ASSETS = {"page.js": "text/javascript; charset=utf-8", "page.css": "text/css; charset=utf-8"}
REPLAYED_HEADER = "Idempotent-Replayed"  # set on an answer repeated for a retried Idempotency-Key
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="any unique string per request (e.g. a UUID); a retry with the same key and body gets the first answer and writes nothing",
    ),
]
DOCS_ASSETS = "/docs-assets"  # Swagger UI and ReDoc files, shipped by fastapi-offline
SCOPE_EXTENSION = "x-required-scope"  # each route's scope, in its OpenAPI operation for clients to read
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine-readable code, and a message saying what to fix."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, details: list[dict[str, str]] | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    """Every failure becomes {"error": {"code", "message"}}; clients never see a stack trace."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.code, error.message, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        # FastAPI reads a non-JSON content type as "no JSON body"; say that instead of "body: Field required".
        if "json" not in request.headers.get("content-type", "json") and any(p.get("loc", ())[:1] == ("body",) for p in problems):
            return _error(415, "unsupported_media_type", "send the request body as JSON with 'Content-Type: application/json'")
        broken_json = [p for p in problems if p.get("type") == "json_invalid"]
        if broken_json:
            reason = (broken_json[0].get("ctx") or {}).get("error", "")
            return _error(400, "malformed_json", f"request body is not valid JSON{': ' + str(reason) if reason else ''}")
        details = [{"location": ".".join(str(part) for part in p.get("loc", ())), "message": str(p.get("msg", ""))} for p in problems]
        summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:3])
        return _error(422, "invalid_request", summary, details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, _STATUS_CODES.get(error.status_code, "error"), str(error.detail), headers=error.headers)

    @app.exception_handler(EventValidationError)
    async def invalid_events(_: Request, error: EventValidationError) -> JSONResponse:
        return _error(422, "invalid_events", f"{error}; nothing was written")

    @app.exception_handler(IdempotencyKeyReusedError)
    async def key_reused(_: Request, error: IdempotencyKeyReusedError) -> JSONResponse:
        return _error(422, "idempotency_key_reused", f"{error}; nothing was written")

    @app.exception_handler(PrivacyError)
    async def erasure_incomplete(_: Request, error: PrivacyError) -> JSONResponse:
        log.error("erasure incomplete: %s", error)
        return _error(500, "erasure_incomplete", str(error))

    @app.exception_handler(UnknownIdError)
    async def unknown_id(_: Request, error: UnknownIdError) -> JSONResponse:
        return _error(404, "unknown_id", str(error))

    @app.exception_handler(StoreError)
    async def store_down(_: Request, error: StoreError) -> JSONResponse:
        log.error("event store error: %s", error)
        return _error(503, "store_unavailable", "the event store is unavailable; nothing was written; retry later")


class ErrorBoundary:
    """Turns an unhandled error into one logged traceback and a JSON 500. (An exception handler for `Exception`
    runs in Starlette's outermost middleware, which re-raises after answering, so uvicorn logged every error again.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            log.exception("unhandled error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:  # otherwise the client already has a status line and the connection is simply closed
                await send_error(send, 500, "internal_error", "internal error; it has been logged")


def _install_local_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc with their assets served from the fastapi-offline package, not a CDN,
    so the docs work offline and load nothing from another origin."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    spec = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=spec,
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=spec,
            title=f"{app.title} API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def _scoped_route_class(authorize: Callable[[Request, str], Awaitable[None]]) -> type[APIRoute]:
    """Routes that check the key and its scope before FastAPI reads the body, so no unauthenticated input is parsed."""

    class ScopedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            scope = (self.openapi_extra or {}).get(SCOPE_EXTENSION)
            if scope is None:
                return handler

            async def checked(request: Request) -> Response:
                await authorize(request, scope)
                return await handler(request)

            return checked

    return ScopedRoute


def _answer(model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A route's answer serialised as JSON in the thread that computed it. Returned as a model from a sync route, FastAPI
    would validate it against its own type again in a second thread-pool hop before serialising it; the busy routes
    declare their `response_model` for the OpenAPI spec and answer through this instead."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json", headers=headers)


def _address(request: Request) -> str:
    """The client's address, what bad-key limits count by."""
    return request.client.host if request.client else "unknown"


def _stored_id(privacy: PrivacyConfig) -> Callable[[str], str]:
    """How a user id the API receives is stored: its keyed pseudonym when ingestion pseudonymises ids, else itself."""
    if not (privacy.enabled and privacy.pseudonymise):
        return lambda user_id: user_id
    # Resolved once at start-up, so a missing key stops the server instead of failing a request later.
    return pseudonymiser_from_config(privacy).pseudonym


def _ingest(privacy: PrivacyConfig, stored_id: Callable[[str], str]) -> Callable[[StoredEvent], StoredEvent]:
    """A posted event as it is stored: user id pseudonymised and PII scrubbed from free text, as the privacy config asks."""
    scrubbed = [column for column in privacy.scrub_columns.get("events", []) if column in ("query", "text")] if privacy.enabled and privacy.scrub_pii else []

    def ingest(event: StoredEvent) -> StoredEvent:
        clean: dict[str, Any] = {column: scrub_text(value)[0] for column in scrubbed if (value := getattr(event, column))}
        return replace(event, user_id=stored_id(event.user_id), **clean)

    return ingest


def create_app(
    config: LongtailConfig, services: Services, store: EventStore, reports_dir: FilePath | None = None, limit_tables: LimitTables | None = None
) -> FastAPI:
    """Build the API over a services object (search, recommendations, profiles) and an open event store; the operator
    console shows the reports found in `reports_dir` (the served folder), and an erasure also scrubs them. Rate limits
    spend buckets in `limit_tables` (shared by a server's processes; this process's own by default)."""
    serve = config.serve
    stored_id = _stored_id(config.privacy)
    ingest = _ingest(config.privacy, stored_id)
    metrics = ApiMetrics()
    metrics.watch_caches(lambda: services.cache_stats())  # looked up at each scrape, like every other figure
    tables = limit_tables or LimitTables.local()
    limiter = RateLimiter(serve.rate_limit_per_second, serve.rate_limit_burst, table=tables.keys)
    # Unknown or revoked keys are limited per client address, so guessing keys cannot drive the store with look-ups.
    bad_keys = RateLimiter(serve.invalid_key_rate_per_second, serve.invalid_key_burst, table=tables.addresses)
    bearer = HTTPBearer(auto_error=False, description="an API key from `longtail keys create`")
    app = FastAPI(
        title="Longtail",
        version="0.1.0",
        summary="Product search, recommendations, events and profiles. Authenticate with 'Authorization: Bearer <key>'.",
        docs_url=None,
        redoc_url=None,
    )
    _install_error_handlers(app)
    _install_local_docs(app)

    verified = VerifiedKeys(serve.key_cache_seconds)

    def presented_key(request: Request) -> str:
        """The bearer key sent, unless it is missing or its address is blocked for sending bad keys."""
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "missing_api_key", "send an API key as 'Authorization: Bearer <key>'", {"WWW-Authenticate": "Bearer"})
        blocked = bad_keys.wait(_address(request))
        if blocked > 0:
            metrics.rate_limited.inc()
            raise ApiError(429, "rate_limited", "too many requests with invalid API keys from this address", {"Retry-After": str(math.ceil(blocked))})
        return token

    def look_up(request: Request, token: str) -> Principal:
        """The key's principal from the store (a blocking read); an unknown, revoked or malformed key is a 401."""
        principal = verify_key(store, token)
        if principal is None:
            bad_keys.acquire(_address(request))
            raise ApiError(401, "invalid_api_key", "the API key is unknown, revoked or malformed", {"WWW-Authenticate": "Bearer"})
        verified.put(token, principal)
        return principal

    async def authorize(request: Request, scope: str) -> None:
        token = presented_key(request)
        principal = verified.get(token)
        if principal is None:
            # The store read blocks: it runs on the thread pool, off the event loop. A key verified in the last
            # serve.key_cache_seconds skips it, and with it a thread hop per request.
            principal = await run_in_threadpool(look_up, request, token)
        request.state.key_id = principal.key_id  # scopes an Idempotency-Key to the client that sent it
        if not principal.allows(scope):
            raise ApiError(403, "insufficient_scope", f"this API key lacks the '{scope}' scope")
        wait = limiter.acquire(principal.key_id)
        if wait > 0:
            metrics.rate_limited.inc()
            raise ApiError(429, "rate_limited", f"rate limit of {serve.rate_limit_per_second:g} requests/s exceeded", {"Retry-After": str(math.ceil(wait))})

    app.router.route_class = _scoped_route_class(authorize)

    def needs(scope: str) -> dict[str, Any]:
        """Route options: the scope the route class checks, and the bearer scheme in the OpenAPI spec."""
        return {"openapi_extra": {SCOPE_EXTENSION: scope}, "dependencies": [Depends(bearer)]}

    rulebook = RuleBook(store, serve.popularity_refresh_seconds)
    app.include_router(shop_router(services, store, rulebook, needs, app.router.route_class, stored_id, reports_dir))
    top_k = Annotated[int, Query(ge=1, le=serve.max_results, description="how many items")]

    web = files("longtail.serve") / "web"
    page = (web / "index.html").read_text(encoding="utf-8")
    assets = {name: (web / name).read_bytes() for name in PAGE_ASSETS}
    page_headers = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"}

    @app.get("/", include_in_schema=False)
    def web_page() -> HTMLResponse:
        """The page for people: search with facets, similar items, a user's recommendations and profile (asks for a key)."""
        return HTMLResponse(page, headers=page_headers)

    @app.get("/web/{name}", include_in_schema=False)
    def web_asset(name: str) -> Response:
        """The page's script and style sheet, served from the package so the policy can forbid inline code."""
        if name not in assets:
            raise ApiError(404, "not_found", f"no asset {name!r}")
        return Response(assets[name], media_type=PAGE_ASSETS[name], headers=page_headers)

    @app.get("/health", tags=["operations"])
    def health() -> Health:
        """Liveness without a key: whether the store answers, how many events it holds, which model version answers."""
        return Health(status="ok", store=type(store).__name__, events=store.count(), model=services.model_version(), process=os.getpid())

    @app.get("/metrics", tags=["operations"], response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}}, **needs("read"))
    def prometheus() -> Response:
        """Prometheus text format: requests and latency per route, events written, rate-limited requests."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def idempotency(request: Request, route: str, key: str | None, batch: EventBatch | ItemBatch) -> Idempotency | None:
        """The write's Idempotency-Key, scoped to the API key that sent it, with a hash of what was sent."""
        if key is None:
            return None
        return Idempotency(request.state.key_id, key, route, hashlib.sha256(batch.model_dump_json().encode()).hexdigest())

    @app.post("/events", status_code=201, response_model=EventsWritten, tags=["events"], **needs("write_events"))
    def post_events(batch: EventBatch, request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        """Write a batch of events in one transaction; 201 means every one is committed and durable. With an
        Idempotency-Key, a retry gets the first answer back and writes nothing new."""
        if len(batch.events) > serve.max_batch_events:
            raise ApiError(422, "too_many_events", f"at most {serve.max_batch_events} events per request; split the batch")
        events = [ingest(event) for event in validate_events(batch.events, config.quality)]
        unknown = services.unknown_items(event.item_id for event in events if event.item_id is not None)
        if unknown:
            raise ApiError(
                422, "unknown_items", f"events reference unknown item_id(s) {', '.join(map(repr, unknown[:10]))}; post the items first; nothing was written"
            )
        answer, replayed = store.append_once(events, idempotency(request, "POST /events", idempotency_key, batch))
        if not replayed:
            metrics.events_written.inc(answer["count"])
            services.observe([replace(event, id=event_id) for event, event_id in zip(events, answer["ids"], strict=True)])
        return _answer(EventsWritten(**answer), 201, {REPLAYED_HEADER: "true"} if replayed else None)

    @app.delete("/users/{user_id:path}", tags=["users"], **needs("admin"))
    def erase_user(user_id: UserId) -> Erased:
        """Erase every event of a user and anything derived from them, under their pseudonym and (for data stored before
        pseudonymisation was switched on) their raw id."""
        spellings = list(dict.fromkeys([stored_id(user_id), user_id]))
        deleted = store.delete_users(spellings)
        scrubbed = scrub_reports(reports_dir, spellings) if reports_dir is not None else []
        if scrubbed:
            log.info("erasure replaced a user's ids in %d report file(s): %s", len(scrubbed), ", ".join(map(str, scrubbed)))
        if deleted == 0 and not scrubbed:
            raise ApiError(404, "unknown_id", f"no events for user_id {user_id!r}; nothing was erased")
        for spelling in spellings:
            services.forget_user(spelling)
        return Erased(user_id=user_id, events_deleted=deleted)

    @app.post("/search", response_model=SearchResponse, tags=["search"], **needs("read"))
    def search(request: SearchRequest) -> Response:
        """Ranked items for a text query, with category and brand facets, corrections, relaxation and merchandising rules applied."""
        scoped = request if request.user_id is None else request.model_copy(update={"user_id": stored_id(request.user_id)})
        return _answer(merchandised_search(rulebook, services, scoped))

    @app.get("/users/{user_id:path}/recommendations", response_model=Recommendations, tags=["users"], **needs("read"))
    def recommendations(user_id: UserId, k: top_k = 10) -> Response:
        """Items to recommend to a user; a user without events gets popular items."""
        return _answer(services.recommend(stored_id(user_id), k).model_copy(update={"user_id": user_id}))

    @app.get("/users/{user_id:path}/profile", tags=["users"], **needs("read"))
    def profile(user_id: UserId) -> Profile:
        """A user's profile; 404 for a user without events."""
        try:
            return services.profile(stored_id(user_id)).model_copy(update={"user_id": user_id})
        except UnknownIdError:
            raise UnknownIdError(f"no events for user_id {user_id!r}") from None  # name the id the client sent

    @app.get("/items/{item_id:path}/similar", tags=["items"], **needs("read"))
    def similar(item_id: ItemId, k: top_k = 10) -> SimilarItems:
        """Items similar to a catalogue item; 404 for an unknown item."""
        return services.similar(item_id, k)

    @app.post("/items", tags=["items"], **needs("admin"))
    def post_items(batch: ItemBatch, request: Request, response: Response, idempotency_key: IdempotencyKey = None) -> ItemsWritten:
        """Add or update items; they are stored, then searchable and recommendable when this returns. With an
        Idempotency-Key, a retry gets the first answer back and writes nothing new."""
        records = [item.model_dump(mode="json") for item in batch.items]
        answer, replayed = store.upsert_items(records, idempotency(request, "POST /items", idempotency_key, batch))
        if replayed:
            response.headers[REPLAYED_HEADER] = "true"
        else:
            services.upsert_items(batch.items)
        return ItemsWritten(**answer)

    # Each added middleware wraps the ones before: metrics see every answer, the guard's 413 and 400 and the boundary's 500.
    app.add_middleware(ErrorBoundary)
    app.add_middleware(BodyGuard, max_bytes=serve.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    return app
