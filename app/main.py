"""The application factory: the one place that wires settings, clients, caches and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from importlib.metadata import version
from typing import Any

import httpx2
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from app.api.answers import AnswerCache, BuildLimiter
from app.api.errors import install_error_handlers
from app.api.limits import CallerLimit
from app.api.middleware import (
    AuthenticateFirst,
    BodySizeLimit,
    Compression,
    HeadAsGet,
    RequestIds,
    RequestMetrics,
    UnexpectedErrors,
)
from app.api.openapi import install_openapi
from app.api.router import api_router
from app.api.state import LifespanState, Services
from app.cache import LoadState, SnapshotCache
from app.console import install_console, install_docs
from app.domain.interpret import BalanceOrders
from app.heap import KEEP_HEAP, HeapPolicy
from app.logs import add_secrets
from app.metrics import Metrics
from app.services.codec import decode_interpreted, encode_interpreted
from app.services.directory import Directory
from app.services.events import EventHub, EventMetrics, ObservationLog
from app.services.idempotency import IdempotencyStore
from app.services.shared import RedisSnapshots, RedisTier
from app.services.treasury import (
    Breakers,
    Connection,
    FinqwareConnection,
    FinsyncConnection,
    Treasury,
    snapshot_moment,
)
from app.settings import (
    ConfigurationError,
    Settings,
    configured_connections,
    redis_url_redacted,
    secret_values,
)
from app.tracing import Tracing
from app.upstreams.errors import UpstreamError
from app.upstreams.finqware import FinqwareClient
from app.upstreams.finsync import FinsyncClient
from app.upstreams.http import ObservedClient, RetryPolicy

logger = logging.getLogger("app")

DESCRIPTION = """\
One HTTP API that shows every balance a company holds or owes, gathered from
**FinSync** (cajas, wallets, banks and cuentas corrientes) and **Finqware** (bank
accounts reached through open-banking consents), with every figure already
interpreted from the company's point of view.

Amounts are exact decimal **strings**, signed: positive is something the company
has or is owed, negative is something it owes. Every date-time carries its UTC
offset. Errors are RFC 9457 `application/problem+json`. Callers send
`Authorization: Bearer <key>`; creating needs a key with the `write` scope.

Within v1 the contract only grows: new operations, new optional parameters, new
response fields. Clients must ignore response fields they do not know. What is
going away is marked `deprecated: true` here and announced with `Deprecation` and
`Sunset` headers before it goes.
"""

TAGS = [
    {"name": "counterparties", "description": "Who the company holds balances with."},
    {"name": "positions", "description": "Interpreted balances and totals per currency."},
    {"name": "events", "description": "Changes as they happen, as server-sent events."},
    {"name": "operations", "description": "Probes and metrics for orchestrators."},
]


def _operation_id(route: APIRoute) -> str:
    # Route names are the operation ids, so generated clients get `list_positions()`.
    return route.name


def _http_client(
    settings: Settings,
    upstream: str,
    base_url: str,
    transport: httpx2.AsyncBaseTransport | None,
    metrics: Metrics,
    tracing: Tracing,
) -> httpx2.AsyncClient:
    def observe(outcome: str, seconds: float) -> None:
        metrics.observe_upstream(upstream, outcome, seconds)

    return ObservedClient(
        observe=observe,
        upstream=upstream,
        span=tracing.span,
        base_url=base_url.rstrip("/") + "/",
        transport=transport,
        timeout=settings.upstream_timeout_seconds,
        http2=settings.upstream_http2 and transport is None,
        follow_redirects=False,
        headers={"user-agent": f"tesoro/{version('tesoro')}"},
    )


def _retries(settings: Settings, metrics: Metrics) -> RetryPolicy:
    return RetryPolicy(
        attempts=settings.upstream_retry_attempts,
        deadline_seconds=settings.upstream_deadline_seconds,
        on_retry=metrics.observe_retry,
    )


# Failures only someone's action heals (a new onboarding, a new key): asked again rarely.
_ASKED_HOURLY = frozenset({"consent_expired", "unauthorized"})


def _cache(
    settings: Settings,
    ttl_seconds: float,
    *,
    observe: Callable[[str, str], None] | None = None,
    on_state: Callable[[str, LoadState], None] | None = None,
    stamp: Callable[[Any], datetime | None] | None = None,
    refresh_floor: bool = True,
    slots: int = 64,
    shared: RedisTier | None = None,
    heap: HeapPolicy = KEEP_HEAP,
    log_failures: bool = True,
) -> SnapshotCache[Any]:
    """A connection cache with the service's stale, refresh and back-off settings; with a
    shared tier, Redis behind it (the snapshots are interpreted connections)."""
    return SnapshotCache[Any](
        ttl_seconds=ttl_seconds,
        stale_if_error_seconds=settings.stale_if_error_seconds,
        min_refresh_interval_seconds=(
            settings.min_refresh_interval_seconds if refresh_floor else 0.0
        ),
        failure_backoff_seconds=lambda exc: (
            settings.permanent_failure_backoff_seconds
            if isinstance(exc, UpstreamError) and exc.code in _ASKED_HOURLY
            else settings.failure_backoff_seconds
        ),
        maxsize=slots,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
        observe=observe,
        on_state=on_state,
        stamp=stamp,
        heap=heap,
        log_failures=log_failures,
        shared=None
        if shared is None
        else RedisSnapshots(
            shared,
            encode=encode_interpreted,
            decode=decode_interpreted,
            # A load holds the fleet's lock for a key at most this long.
            lock_seconds=settings.upstream_deadline_seconds + 5,
        ),
    )


def _shared_tier(settings: Settings, metrics: Metrics) -> RedisTier | None:
    """The Redis client when TESORO_REDIS_URL is set (the `redis` extra), else None."""
    if settings.redis_url is None:
        return None
    try:
        import redis  # noqa: F401  (the extra is installed)
    except ImportError:
        raise ConfigurationError(
            "TESORO_REDIS_URL is set but the redis extra is not installed "
            "(pip install 'tesoro[redis]')"
        ) from None
    return RedisTier(
        settings.redis_url.get_secret_value(),
        shown_as=redis_url_redacted(settings.redis_url),
        timeout_seconds=settings.redis_timeout_seconds,
        on_change=metrics.observe_redis,
        on_bad_value=metrics.observe_redis_bad_value,
    )


def _build_services(
    settings: Settings,
    stack: AsyncExitStack,
    transport: httpx2.AsyncBaseTransport | None,
    metrics: Metrics,
    tracing: Tracing,
    shared: RedisTier | None = None,
    heap: HeapPolicy = KEEP_HEAP,
    observations: ObservationLog | None = None,
) -> Services:
    connections: list[Connection] = []
    finsync: FinsyncClient | None = None
    breakers = Breakers(
        failures=settings.breaker_failures,
        open_seconds=settings.breaker_open_seconds,
        on_state=metrics.observe_breaker,
    )
    if settings.finsync_enabled and settings.finsync_api_key is not None:
        http = _http_client(
            settings, "finsync", settings.finsync_base_url, transport, metrics, tracing
        )
        stack.push_async_callback(http.aclose)
        finsync = FinsyncClient(
            http,
            api_key=settings.finsync_api_key,
            page_concurrency=settings.finsync_page_concurrency,
            retries=_retries(settings, metrics),
        )
        connections.append(
            FinsyncConnection(
                client=finsync,
                cache=_cache(
                    settings,
                    settings.finsync_ttl_seconds,
                    observe=metrics.cache_observer("finsync"),
                    on_state=metrics.observe_connection,
                    stamp=snapshot_moment,
                    shared=shared,
                    heap=heap,
                ),
                breakers=breakers,
            )
        )
    if (
        settings.finqware_enabled
        and settings.finqware_client_id
        and settings.finqware_client_secret
    ):
        http = _http_client(
            settings, "finqware", settings.finqware_base_url, transport, metrics, tracing
        )
        stack.push_async_callback(http.aclose)
        finqware = FinqwareClient(
            http,
            client_id=settings.finqware_client_id,
            client_secret=settings.finqware_client_secret,
            retries=_retries(settings, metrics),
        )
        orders = BalanceOrders(
            current=tuple(settings.current_balance_types),
            current_fallback=tuple(settings.current_fallback_balance_types),
            available=tuple(settings.available_balance_types),
        )
        slots = 2 * len(settings.finqware_consents) + 8
        balances_cache = _cache(
            settings,
            settings.finqware_ttl_seconds,
            observe=metrics.cache_observer("finqware_balances"),
            on_state=metrics.observe_connection,
            stamp=snapshot_moment,
            slots=slots,
            shared=shared,
            heap=heap,
        )
        # Names and IBANs: no refresh floor of their own (they follow the balances' loads),
        # and no log line of their own: a failure is part of the connection's load, whose
        # line (or the connection's, when only the names are missing) says it once.
        accounts_cache = _cache(
            settings,
            settings.finqware_accounts_ttl_seconds,
            observe=metrics.cache_observer("finqware_accounts"),
            refresh_floor=False,
            slots=slots,
            heap=heap,
            log_failures=False,
        )
        connections.extend(
            FinqwareConnection(
                consent=consent,
                client=finqware,
                cache=balances_cache,
                accounts_cache=accounts_cache,
                orders=orders,
                breakers=breakers,
            )
            for consent in settings.finqware_consents
        )
    treasury = Treasury(
        connections,
        deadline_seconds=settings.request_deadline_seconds,
    )
    return Services(
        treasury=treasury,
        directory=Directory(treasury, finsync, shared=shared),
        idempotency=IdempotencyStore(shared=shared),
        answers=AnswerCache(
            on_build=metrics.observe_answer_build,
            release=heap.release,
            limiter=BuildLimiter(
                settings.max_concurrent_builds,
                settings.max_queued_builds,
                observe=metrics.observe_builds,
                on_refused=lambda: metrics.observe_rejected("builds_queue_full"),
            ),
            on_abandoned=metrics.observe_abandoned_build,
        ),
        events=_event_hub(settings, treasury, metrics, shared, observations),
    )


def _event_hub(
    settings: Settings,
    treasury: Treasury,
    metrics: Metrics,
    shared: RedisTier | None,
    log: ObservationLog | None,
) -> EventHub:
    """GET /events' hub: fed by history's recorder, and through Redis by the other replicas."""
    metrics.declare_events()
    return EventHub(
        log=log,
        connections=treasury.connections,
        shared=shared,
        max_subscribers=settings.events_max_subscribers,
        queue_size=settings.events_queue_size,
        heartbeat_seconds=settings.events_heartbeat_seconds,
        metrics=EventMetrics(
            subscribers=metrics.events_subscribers.set,
            sent=lambda kind: metrics.events_sent.labels(kind).inc(),
            reset=lambda reason: metrics.events_resets.labels(reason).inc(),
            refused=metrics.events_refused.inc,
        ),
    )


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    tracing: Tracing | None = None,
    heap: HeapPolicy = KEEP_HEAP,
    observations: ObservationLog | None = None,
) -> FastAPI:
    """Build the service. `transport` replaces the network for every upstream (tests, sandbox);
    `tracing` replaces the one the settings and OTEL_* variables make (tests); `heap` is
    told of every snapshot stored and replaced (the server's heap policy); `observations`
    is the history the events are told of and replay from (tests)."""
    settings = settings if settings is not None else Settings()
    if settings.sandbox:
        from app.sandbox.wiring import sandbox_settings, sandbox_transport

        settings = sandbox_settings(settings)
        if transport is None:
            transport = sandbox_transport()
    settings.check_runnable()
    # Whatever the logs say, these values are written as [hidden].
    add_secrets(secret_values(settings))
    # One registry per app: two apps in one process (tests) never share counts.
    metrics = Metrics()
    tracing = tracing if tracing is not None else Tracing.from_settings(settings.tracing_enabled)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
        async with AsyncExitStack() as stack:
            if transport is not None:
                stack.push_async_callback(transport.aclose)
            stack.callback(tracing.shutdown)
            shared = _shared_tier(settings, metrics)
            app.state.redis = shared
            if shared is not None:
                stack.push_async_callback(shared.close)
                await shared.ping()  # logs whether it answers; never stops the start
            services = _build_services(
                settings, stack, transport, metrics, tracing, shared, heap, observations
            )
            await services.events.start()
            stack.push_async_callback(services.events.close)
            if settings.sandbox:
                logger.info("serving the built-in FinSync and Finqware simulators (sandbox)")
            else:
                logger.info(
                    "connections: %s",
                    ", ".join(str(item["key"]) for item in configured_connections(settings)),
                    extra={"connections": configured_connections(settings)},
                )
            if not settings.auth_required:
                logger.warning(
                    "callers are NOT authenticated (sandbox without keys, or TESORO_AUTH_DISABLED)"
                )
            yield {"services": services}

    app = FastAPI(
        title="tesoro",
        version=version("tesoro"),
        summary="Treasury backend-for-frontend over FinSync and Finqware.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        # Unset, the spec names no server: clients call where they fetched it from.
        servers=(
            [{"url": settings.public_base_url, "description": "This deployment"}]
            if settings.public_base_url
            else None
        ),
        generate_unique_id_function=_operation_id,
        lifespan=lifespan,
        # `/positions/` is a 404, never a redirect: a redirect would be built from `Host`.
        redirect_slashes=False,
        # /docs is served from the package (app.console), never from a CDN; no /redoc.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    # A bug answers a logged 500 problem here, inside the metrics, so it is counted too.
    app.add_middleware(UnexpectedErrors)
    # Starlette's own limit answers text/plain; ours answers a problem like every error.
    app.add_middleware(BodySizeLimit)
    # Outside the size limit: a write from nobody is a 401 whatever its body.
    app.add_middleware(AuthenticateFirst, settings=settings)
    app.add_middleware(Compression)
    app.add_middleware(HeadAsGet)
    if settings.cors_origins:
        # Browsers on these origins may call tesoro; the rest get no CORS headers at all.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-None-Match",
                "Idempotency-Key",
                "X-Request-ID",
                "Cache-Control",
            ],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID"],
            max_age=600,
        )
    # Before any other work of ours (cheap refusals), inside the metrics (they are counted).
    app.add_middleware(CallerLimit, settings=settings, metrics=metrics)
    # Outermost of ours, so refused bodies and unmatched paths are counted too.
    app.add_middleware(RequestMetrics, metrics=metrics)
    # Outside everything: every answer, refusals included, carries its request id.
    app.add_middleware(RequestIds, settings=settings)
    app.include_router(api_router)
    install_openapi(app)
    install_docs(app)
    install_console(app, settings)
    return app
