"""Prometheus metrics of one app: its own registry, built by create_app, never at import."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.domain.models import SourceInfo, SourceStatus

_LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


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

    def observe_upstream(self, upstream: str, outcome: str, seconds: float) -> None:
        self.upstream_requests.labels(upstream, outcome).inc()
        self.upstream_latency.labels(upstream).observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_latency.labels(route, method).observe(seconds)

    def observe_sources(self, sources: Sequence[SourceInfo]) -> None:
        for info in sources:
            self.connection_up.labels(info.source).set(
                0 if info.status == SourceStatus.unavailable else 1
            )
            self.connection_stale.labels(info.source).set(
                1 if info.status == SourceStatus.stale else 0
            )
