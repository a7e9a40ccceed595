"""Prometheus metrics of one app: its own registry, built by create_app, never at import."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx2
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.models import SourceInfo, SourceStatus
from app.domain.treasury import AllSourcesUnavailableError, Connection, Gathered, Treasury

_LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Label values a caller cannot grow without bound: unknown methods and paths share one each.
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every metric tesoro exports; one instance per app, so tests never share counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "tesoro_http_requests",
            "Requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "tesoro_http_request_duration_seconds",
            "Time to answer a request, by route template and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.upstream_requests = Counter(
            "tesoro_upstream_requests",
            "Calls to an upstream, by upstream and outcome "
            "(HTTP status code, timeout, transport_error, cancelled or error).",
            ["upstream", "outcome"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "tesoro_upstream_request_duration_seconds",
            "Time an upstream took to answer, body included, by upstream.",
            ["upstream"],
            buckets=_LATENCY_BUCKETS_SECONDS,
            registry=self.registry,
        )
        self.connection_up = Gauge(
            "tesoro_connection_up",
            "1 when the connection's last answer was ok or stale, 0 when unavailable.",
            ["connection"],
            registry=self.registry,
        )
        self.connection_stale = Gauge(
            "tesoro_connection_stale",
            "1 when the connection's last answer was served from stale data.",
            ["connection"],
            registry=self.registry,
        )

    def observe_sources(self, sources: Sequence[SourceInfo]) -> None:
        for info in sources:
            self.connection_up.labels(info.source).set(
                0 if info.status == SourceStatus.unavailable else 1
            )
            self.connection_stale.labels(info.source).set(
                1 if info.status == SourceStatus.stale else 0
            )


class InstrumentedClient(httpx2.AsyncClient):
    """An upstream's HTTP client that counts and times every call it sends.

    Counting in `send`, not in a wrapping transport, leaves the transport to httpx2: with
    none injected it builds its own, with HTTP/2 when asked and proxies from the environment.
    """

    def __init__(self, *, upstream: str, metrics: Metrics, **options: Any) -> None:
        super().__init__(**options)
        self._upstream = upstream
        self._metrics = metrics

    async def send(self, request: httpx2.Request, **options: Any) -> httpx2.Response:
        started_seconds = time.perf_counter()
        try:
            response = await super().send(request, **options)
        except httpx2.TimeoutException:
            self._count("timeout", started_seconds)
            raise
        except httpx2.TransportError:
            self._count("transport_error", started_seconds)
            raise
        except asyncio.CancelledError:
            self._count("cancelled", started_seconds)
            raise
        except Exception:
            self._count("error", started_seconds)
            raise
        self._count(str(response.status_code), started_seconds)
        return response

    def _count(self, outcome: str, started_seconds: float) -> None:
        self._metrics.upstream_requests.labels(self._upstream, outcome).inc()
        self._metrics.upstream_latency.labels(self._upstream).observe(
            time.perf_counter() - started_seconds
        )


class ObservedTreasury(Treasury):
    """A Treasury that records the state of every connection it reports in `sources`."""

    def __init__(self, connections: Sequence[Connection], metrics: Metrics) -> None:
        super().__init__(connections)
        self._metrics = metrics

    async def gather(
        self,
        *,
        refresh: bool = False,
        connections: Sequence[Connection] | None = None,
        require_one: bool = True,
    ) -> Gathered:
        try:
            gathered = await super().gather(
                refresh=refresh, connections=connections, require_one=require_one
            )
        except AllSourcesUnavailableError as exc:
            self._metrics.observe_sources(exc.sources)
            raise
        self._metrics.observe_sources(gathered.sources)
        return gathered


def route_label(scope: Scope) -> str:
    """The matched route's template (`/counterparties/{counterparty_id}`), never the raw path."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


def method_label(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else OTHER_METHOD


class RequestMetrics:
    """ASGI middleware counting and timing requests by route template (bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_seconds = time.perf_counter()
        # What the server error handler outside this middleware answers when the app raises.
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route, method = route_label(scope), method_label(scope)
            self.metrics.http_requests.labels(route, method, str(status)).inc()
            self.metrics.http_latency.labels(route, method).observe(
                time.perf_counter() - started_seconds
            )
