"""The application factory: the one place that wires settings, clients, caches and routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import httpx2
from fastapi import FastAPI, routing
from fastapi.routing import APIRoute
from pydantic import SecretStr

from app.api.answers import AnswerCache, BuildLimiter
from app.api.edge.fast import FastPath
from app.api.edge.layer import Edge
from app.api.errors import install_error_handlers
from app.api.openapi import install_openapi
from app.api.router import api_router
from app.api.state import LifespanState, Services
from app.cache import LoadState, SnapshotCache
from app.console import install_console, install_docs
from app.domain.fx import report_currency_problem
from app.domain.interpret import BalanceOrders
from app.logs import add_secrets
from app.metrics import Metrics
from app.services.codec import decode_interpreted, encode_interpreted
from app.services.directory import Directory
from app.services.events import EventHub, EventMetrics, ObservationLog
from app.services.history import STORE_ERRORS, HistoryRecorder
from app.services.idempotency import IdempotencyStore
from app.services.observing import Lease, Observer
from app.services.rates import Rates
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
    database_url_shown,
    redis_url_redacted,
    secret_values,
)
from app.store.history import HistoryStore
from app.store.urls import DatabaseUrlError
from app.tracing import Tracing
from app.upstreams.bcra import BcraClient
from app.upstreams.bnr import BnrClient
from app.upstreams.dolarapi import DolarapiClient
from app.upstreams.ecb import EcbClient
from app.upstreams.errors import UpstreamError
from app.upstreams.finqware import FinqwareClient
from app.upstreams.finsync import FinsyncClient
from app.upstreams.fixings import RateSource
from app.upstreams.http import ObservedClient, RetryPolicy, load_transport_backend

if TYPE_CHECKING:
    from app.sandbox.moves import BalanceMoves

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
    {"name": "rates", "description": "Exchange rates for a reporting currency, every leg shown."},
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
    on_value: Callable[[str, Any, Exception | None], None] | None = None,
    stamp: Callable[[Any], datetime | None] | None = None,
    refresh_floor: bool = True,
    slots: int = 64,
    shared: RedisTier | None = None,
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
        on_value=on_value,
        stamp=stamp,
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


def _per_source(told: Callable[[str, Any], None]) -> Callable[[str, Any], None]:
    """A metrics hook told of a fixing's cache key (`fx:bcra:REF:2026-03-19`), told of its
    source's connection (`fx:bcra`) instead: one series per source, not one per date."""

    def tell(key: str, what: Any) -> None:
        told(":".join(key.split(":", 2)[:2]), what)

    return tell


# A published fixing never changes: one for a day its source has closed is kept this long.
PAST_FIXING_SECONDS = 30 * 86400


def _rates(
    settings: Settings,
    stack: AsyncExitStack,
    transport: httpx2.AsyncBaseTransport | None,
    metrics: Metrics,
    tracing: Tracing,
    breakers: Breakers,
) -> Rates:
    """The rate sources that are on (one HTTP client each), their caches and the policies."""
    makers: dict[str, tuple[str, Callable[[httpx2.AsyncClient], RateSource]]] = {
        "bcra": (
            settings.fx_bcra_base_url,
            lambda http: BcraClient(http, retries=_retries(settings, metrics)),
        ),
        "bnr": (
            settings.fx_bnr_base_url,
            lambda http: BnrClient(http, retries=_retries(settings, metrics)),
        ),
        "ecb": (
            settings.fx_ecb_base_url,
            lambda http: EcbClient(http, retries=_retries(settings, metrics)),
        ),
        "dolarapi": (
            settings.fx_dolarapi_base_url,
            lambda http: DolarapiClient(http, retries=_retries(settings, metrics)),
        ),
    }
    sources: dict[str, RateSource] = {}
    # A source switched off gets no client at all: it is never asked.
    for name in settings.fx_sources:
        base_url, make = makers[name]
        http = _http_client(settings, f"fx:{name}", base_url, transport, metrics, tracing)
        stack.push_async_callback(http.aclose)
        sources[name] = make(http)
    return Rates(
        sources,
        policies=settings.fx_policy_table,
        default_policy=settings.fx_default_policy,
        max_age_days=settings.fx_max_age_days,
        # The latest fixing of each series: refreshed like any upstream, stale on failure.
        latest_cache=_cache(
            settings,
            settings.fx_ttl_seconds,
            observe=_per_source(metrics.cache_observer("fx_latest")),
            on_state=_per_source(metrics.observe_connection),
            slots=256,
        ),
        # Fixings of closed days: they never change, so no refresh and no stale window.
        past_cache=SnapshotCache[Any](
            ttl_seconds=PAST_FIXING_SECONDS,
            stale_if_error_seconds=0,
            failure_backoff_seconds=settings.failure_backoff_seconds,
            maxsize=4096,
            stale_on=UpstreamError,
            observe=_per_source(metrics.cache_observer("fx_past")),
        ),
        breakers=breakers,
        deadline_seconds=settings.request_deadline_seconds,
    )


def _build_services(
    settings: Settings,
    stack: AsyncExitStack,
    transport: httpx2.AsyncBaseTransport | None,
    metrics: Metrics,
    tracing: Tracing,
    shared: RedisTier | None = None,
    history: HistoryRecorder | None = None,
    observations: ObservationLog | None = None,
) -> Services:
    connections: list[Connection] = []
    # Each new data state and status of a connection is recorded (not the account names').
    on_value = None if history is None else history.on_value
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
                    on_value=on_value,
                    stamp=snapshot_moment,
                    shared=shared,
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
            on_value=on_value,
            stamp=snapshot_moment,
            slots=slots,
            shared=shared,
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
            limiter=BuildLimiter(
                settings.max_concurrent_builds,
                settings.max_queued_builds,
                observe=metrics.observe_builds,
                on_refused=lambda: metrics.observe_rejected("builds_queue_full"),
            ),
            on_abandoned=metrics.observe_abandoned_build,
        ),
        rates=_rates(settings, stack, transport, metrics, tracing, breakers),
        events=_event_hub(
            settings, treasury, metrics, shared, history if observations is None else observations
        ),
        history=history,
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


# The query parameters whose accepted values are the configured policies and the currencies
# they convert into: (path, parameter, what it names).
_FX_CHOICES = (
    ("/positions", "report_currency", "currencies"),
    ("/positions", "rates", "policies"),
    ("/positions/history", "report_currency", "currencies"),
    ("/positions/history", "rates", "policies"),
    ("/rates", "to", "currencies"),
    ("/rates", "rates", "policies"),
)


def _install_fx_choices(app: FastAPI, settings: Settings) -> None:
    """The served document lists the policies this deployment knows and the currencies they
    convert into, so a generated client offers exactly what is accepted."""
    policies = settings.fx_policy_table
    choices = {
        "policies": list(policies),
        "currencies": sorted(
            {
                code
                for policy in policies.values()
                for code in policy.currencies
                if report_currency_problem(policy, code) is None
            }
        ),
    }
    served = app.openapi

    def openapi() -> dict[str, Any]:
        spec = served()
        for path, name, kind in _FX_CHOICES:
            for parameter in spec["paths"][path]["get"]["parameters"]:
                if parameter["name"] != name:
                    continue
                schema = parameter["schema"]
                for option in schema.get("anyOf", [schema]):
                    if option.get("type") == "string":
                        option.pop("pattern", None)
                        option.pop("maxLength", None)
                        option["enum"] = choices[kind]
        for path, name in (
            ("/positions", "rate_date"),
            ("/positions/history", "rate_date"),
            ("/rates", "date"),
        ):
            for parameter in spec["paths"][path]["get"]["parameters"]:
                schema = parameter["schema"]
                if parameter["name"] == name and schema.pop("format", None):
                    # Said of the text itself, beside its pattern (not of its absence).
                    for option in schema.get("anyOf", [schema]):
                        if option.get("type") == "string":
                            option["format"] = "date"
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _observer(
    settings: Settings, services: Services, shared: RedisTier | None, history: HistoryRecorder
) -> Observer:
    """Observing every connection on its schedule (with Redis, one replica for the fleet)."""

    def interval_of(connection: Connection) -> float:
        if connection.key == "finsync":
            return settings.observe_finsync_seconds
        return settings.observe_finqware_seconds

    async def last_observed(key: str) -> datetime | None:
        try:
            return await history.store.last_data_at(key)
        except STORE_ERRORS:
            return None

    observer = Observer(
        services.treasury.connections, interval_of=interval_of, last_observed=last_observed
    )
    if shared is not None:
        # Renewed every tick: a replica that dies hands over within three ticks.
        observer.lease = Lease(shared, seconds=3 * observer.tick_seconds + 1)
    return observer


async def _history(
    settings: Settings, stack: AsyncExitStack, metrics: Metrics, *, shared: bool
) -> HistoryRecorder | None:
    """The history store and its recorder when history is on; its migrations applied at start
    unless TESORO_DATABASE_MIGRATE is false. A store that cannot be reached never stops the
    start: answers are served, observations queued, and migrations tried again first."""
    if not settings.history_enabled:
        return None
    shown_as = database_url_shown(settings.database_url)
    try:
        store = HistoryStore.open(settings.database_url.get_secret_value())
    except DatabaseUrlError as exc:
        raise ConfigurationError(f"TESORO_DATABASE_URL: {exc}") from None
    stack.push_async_callback(store.close)
    pending_upgrade = False
    if settings.database_migrate:
        try:
            await store.upgrade()
        except STORE_ERRORS as exc:
            pending_upgrade = True
            logger.warning(
                "history store %s unavailable at start (%s): history is queued until it answers",
                shown_as,
                type(exc).__name__,
            )
    recorder = HistoryRecorder(
        store,
        shared_versions=shared,
        queue_size=settings.history_queue_size,
        retention_days=settings.history_retention_days,
        observe=metrics.observe_history,
        shown_as=shown_as,
        upgrade_first=pending_upgrade,
    )
    logger.info("history: recording into %s", shown_as)
    return recorder


async def _seed_sandbox(settings: Settings, services: Services, history: HistoryRecorder) -> None:
    """The sandbox's empty store gets its plausible past (never a real deployment's)."""
    from app.services.sandbox_history import seed_history

    started = time.perf_counter()
    try:
        written = await seed_history(
            history.store,
            services.treasury.connections,
            days=settings.sandbox_history_days,
            interval_of=lambda key: (
                settings.observe_finsync_seconds
                if key == "finsync"
                else settings.observe_finqware_seconds
            ),
        )
    except STORE_ERRORS as exc:
        logger.warning("history: the sandbox's past not seeded (%s)", type(exc).__name__)
        return
    if written:
        logger.info(
            "history: %d days of sandbox history seeded (%d observations) in %.1f s",
            settings.sandbox_history_days,
            written,
            time.perf_counter() - started,
        )


def prepare_routes(app: FastAPI) -> int:
    """Do at start-up what FastAPI otherwise does on a route's first request: build the
    routes of every included router (each one's dependencies, parameters and response
    fields, for all of them at once), and read each endpoint's source file and line, kept
    for its error messages (`inspect.getsourcelines`). Without this the first request after
    a start paid about 10 ms of both before its route began. Returns the routes prepared."""
    # `_extract_endpoint_context` is FastAPI's own cache of that reading (keyed by the
    # endpoint); should a release drop it, only the route building is done here.
    endpoint_context = getattr(routing, "_extract_endpoint_context", None)
    prepared = 0
    for route in routing.iter_route_contexts(app.router.routes):
        dependant = getattr(route, "dependant", None)
        call = getattr(dependant, "call", None)
        if call is not None and endpoint_context is not None:
            endpoint_context(call)
        prepared += 1
    return prepared


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    tracing: Tracing | None = None,
    observations: ObservationLog | None = None,
    fast_path: bool = True,
) -> FastAPI:
    """Build the service. `transport` replaces the network for every upstream (tests, sandbox);
    `tracing` replaces the one the settings and OTEL_* variables make (tests); `observations`
    is the history the events are told of and replay from (tests); with `fast_path` false,
    every request goes to FastAPI, kept answers included (tests compare both ways)."""
    settings = settings if settings is not None else Settings()
    moves: BalanceMoves | None = None
    if settings.sandbox:
        from app.sandbox.wiring import moving_sandbox, sandbox_settings

        settings = sandbox_settings(settings)
        if "database_url" not in settings.model_fields_set:
            # The sandbox's history is its own: never mixed with a real deployment's.
            settings = settings.model_copy(
                update={"database_url": SecretStr("sqlite:///tesoro-sandbox.db")}
            )
        if transport is None:
            transport, moves = moving_sandbox()
    settings.check_runnable()
    # Whatever the logs say, these values are written as [hidden].
    add_secrets(secret_values(settings))
    # One registry per app: two apps in one process (tests) never share counts.
    metrics = Metrics()
    tracing = tracing if tracing is not None else Tracing.from_settings(settings.tracing_enabled)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[LifespanState]:
        async with AsyncExitStack() as stack:
            load_transport_backend()
            if transport is not None:
                stack.push_async_callback(transport.aclose)
            stack.callback(tracing.shutdown)
            shared = _shared_tier(settings, metrics)
            app.state.redis = shared
            if shared is not None:
                stack.push_async_callback(shared.close)
                await shared.ping()  # logs whether it answers; never stops the start
            history = await _history(settings, stack, metrics, shared=shared is not None)
            app.state.history = history
            services = _build_services(
                settings, stack, transport, metrics, tracing, shared, history, observations
            )
            # Listening before history writes anything; closed after history's last write.
            await services.events.start()
            stack.push_async_callback(services.events.close)
            if history is not None and settings.sandbox:
                await _seed_sandbox(settings, services, history)
            if history is not None:
                await history.start()
                stack.push_async_callback(history.stop)
                observer = _observer(settings, services, shared, history)
                observer.start()
                stack.push_async_callback(observer.stop)
                app.state.observer = observer
            if settings.sandbox:
                logger.info("serving the built-in FinSync and Finqware simulators (sandbox)")
            if moves is not None and settings.sandbox_moves_seconds > 0:
                moving = asyncio.create_task(moves.run(settings.sandbox_moves_seconds))
                stack.push_async_callback(_cancelled, moving)
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
            prepare_routes(app)
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
        # FastAPI's native OpenTelemetry is off: tesoro traces its upstream calls with its own
        # provider (app.tracing) and counts requests in its own metrics, so a provider
        # installed globally (auto-instrumentation) doubles nothing and no request pays
        # FastAPI's per-request provider checks.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    # What every request needs (request id, limits, CORS, HEAD, encoding, metrics and the
    # access line), once, in one layer around the framework.
    fast = FastPath(settings) if fast_path else None
    app.state.fast_path = fast
    app.add_middleware(Edge, settings=settings, metrics=metrics, fast=fast)
    app.include_router(api_router)
    install_openapi(app)
    _install_fx_choices(app, settings)
    install_docs(app)
    install_console(app, settings)
    return app
