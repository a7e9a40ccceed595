"""Prometheus metrics of one app: its own registry, built by create_app, never at import."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

_LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# The route label of requests refused before any route is matched: a body over the size
# limit (413) or a request head over the header limit (431, answered by the server).
REFUSED_ROUTE = "<refused>"
REFUSED_STATUSES = frozenset({413, 429, 431})

# What a cache read did (SnapshotCache's `observe` hook).
CACHE_OUTCOMES = ("hit", "miss", "stale_served", "coalesced_wait", "background_refresh")

# A connection's load state (app.cache.LoadState) as its gauges: up (None: unchanged, the
# last load's outcome still stands), stale after failure, past its TTL.
_CONNECTION_GAUGES: dict[str, tuple[int | None, int, int]] = {
    "loaded": (1, 0, 0),
    "refreshing": (None, 0, 1),
    "failed_serving_stale": (0, 1, 0),
    "failed": (0, 0, 0),
}

# purgatory's state names, and the gauge value of each.
BREAKER_STATES = {"closed": 0, "half-opened": 1, "opened": 2}


class CacheObserver:
    """A cache's `observe(key, outcome)` hook, counting into `tesoro_cache_events`. Each
    (connection, outcome) child is bound once: a read then costs a dict look-up and an
    increment; `counter` gives the increment itself, for a read counted again and again
    (`SnapshotCache.hit_counter`)."""

    def __init__(self, family: Counter, cache: str) -> None:
        self._family = family
        self._cache = cache
        self._children: dict[tuple[str, str], Counter] = {}

    def __call__(self, key: str, outcome: str) -> None:
        child = self._children.get((key, outcome))
        if child is None:
            child = self._child(key, outcome)
        child.inc()

    def counter(self, key: str, outcome: str) -> Callable[[], None]:
        """One more `outcome` of `key`, as a call that takes nothing."""
        child = self._children.get((key, outcome)) or self._child(key, outcome)
        return child.inc

    def _child(self, key: str, outcome: str) -> Counter:
        child = self._children[key, outcome] = self._family.labels(self._cache, key, outcome)
        return child


class Metrics:
    """Every metric tesoro exports; one instance per app, so tests never share counts."""

    def __init__(self) -> None:
        # No `_created` twin of every counter and histogram: Prometheus' text format does not
        # use it, and it doubled the series. prometheus_client's switch is process-wide.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = CollectorRegistry(auto_describe=True)
        self.build_info = Gauge(
            "tesoro_build_info",
            "Always 1; the running tesoro's version is the label.",
            ["version"],
            registry=self.registry,
        )
        self.build_info.labels(version("tesoro")).set(1)
        self.http_requests = Counter(
            "tesoro_http_requests",
            "Requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
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
        # A connection's state follows its loads (what its cache learns), not the answers.
        self.connection_up = Gauge(
            "tesoro_connection_up",
            "1 when the connection's last load succeeded (here, or on another replica through "
            "Redis), 0 when it failed, whatever is served meanwhile.",
            ["connection"],
            registry=self.registry,
        )
        self.connection_stale_after_failure = Gauge(
            "tesoro_connection_stale_after_failure",
            "1 while the connection's last load failed and its last good data is served "
            "(stale, with the error).",
            ["connection"],
            registry=self.registry,
        )
        self.connection_past_ttl = Gauge(
            "tesoro_connection_past_ttl",
            "1 while the connection's data is past its TTL and served while a refresh runs "
            "behind it, no load having failed (normal between loads).",
            ["connection"],
            registry=self.registry,
        )

        self.cache_events = Counter(
            "tesoro_cache_events",
            "Connection cache reads by cache, connection and outcome: hit (fresh), miss (a "
            "load started), coalesced_wait (joined a load under way), stale_served (old data "
            "served: past its TTL while a background_refresh runs, or because the load "
            "failed), background_refresh (a load started behind a stale answer).",
            ["cache", "connection", "outcome"],
            registry=self.registry,
        )
        self.breaker_state = Gauge(
            "tesoro_circuit_breaker_state",
            "A connection's circuit breaker: 0 closed, 1 half-open (one probe), 2 open.",
            ["connection"],
            registry=self.registry,
        )
        self.breaker_opened = Counter(
            "tesoro_circuit_breaker_opened",
            "Times a connection's circuit breaker opened after failures in a row.",
            ["connection"],
            registry=self.registry,
        )
        self.upstream_retries = Counter(
            "tesoro_upstream_retries",
            "Reads tried again after a transient failure, by upstream.",
            ["upstream"],
            registry=self.registry,
        )
        self.answer_builds = Counter(
            "tesoro_answer_builds",
            "Aggregated answers built (once per route, data version and question; every "
            "other request for one is served from the kept bytes), by route.",
            ["route"],
            registry=self.registry,
        )

        self._limits()

    def _limits(self) -> None:
        """Bounded work: requests refused by a limit, builds running and queued."""
        self.rejected = Counter(
            "tesoro_requests_rejected",
            "Requests refused by a work limit, by reason: caller_in_flight (429: the caller "
            "had TESORO_CALLER_MAX_IN_FLIGHT requests in flight), builds_queue_full (503: "
            "every build place and queue place was taken).",
            ["reason"],
            registry=self.registry,
        )
        self.builds_in_flight = Gauge(
            "tesoro_answer_builds_in_flight",
            "Answers being built now (at most TESORO_MAX_CONCURRENT_BUILDS).",
            registry=self.registry,
        )
        self.builds_queued = Gauge(
            "tesoro_answer_builds_queued",
            "Answers waiting for a build place (at most TESORO_MAX_QUEUED_BUILDS).",
            registry=self.registry,
        )
        self.builds_abandoned = Counter(
            "tesoro_answer_builds_abandoned",
            "Builds every caller left before they were done (dropped from the queue, or not "
            "serialised), by route.",
            ["route"],
            registry=self.registry,
        )

    def observe_rejected(self, reason: str) -> None:
        self.rejected.labels(reason).inc()

    def observe_builds(self, running: int, queued: int) -> None:
        self.builds_in_flight.set(running)
        self.builds_queued.set(queued)

    def observe_abandoned_build(self, route: str) -> None:
        self.builds_abandoned.labels(route).inc()

    def cache_observer(self, cache: str) -> CacheObserver:
        """The `observe(key, outcome)` hook of one cache."""
        return CacheObserver(self.cache_events, cache)

    def observe_breaker(self, connection: str, state: str) -> None:
        """A connection's breaker changed state (purgatory's state names)."""
        self.breaker_state.labels(connection).set(BREAKER_STATES.get(state, 0))
        if state == "opened":
            self.breaker_opened.labels(connection).inc()

    def observe_answer_build(self, route: str) -> None:
        self.answer_builds.labels(route).inc()

    def observe_retry(self, upstream: str) -> None:
        self.upstream_retries.labels(upstream).inc()

    def observe_refused_head(self) -> None:
        """A request head over the server's limit, answered 431 before the app saw it."""
        self.http_requests.labels(REFUSED_ROUTE, "other", "431").inc()

    def observe_upstream(self, upstream: str, outcome: str, seconds: float) -> None:
        self.upstream_requests.labels(upstream, outcome).inc()
        self.upstream_latency.labels(upstream).observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        # Each (route, method, status) child is bound once (labels are bounded): a request
        # then costs a dict look-up, an increment and an observation.
        children = self._request_children.get((route, method, status))
        if children is None:
            children = self._request_children[route, method, status] = (
                self.http_requests.labels(route, method, str(status)),
                self.http_latency.labels(route, method),
            )
        requests, latency = children
        requests.inc()
        latency.observe(seconds)

    def observe_connection(self, connection: str, state: str) -> None:
        """What a connection's cache learnt of its loads (app.cache.LoadState)."""
        up, stale_after_failure, past_ttl = _CONNECTION_GAUGES[state]
        if up is not None:
            self.connection_up.labels(connection).set(up)
        self.connection_stale_after_failure.labels(connection).set(stale_after_failure)
        self.connection_past_ttl.labels(connection).set(past_ttl)

    def _history_metrics(self) -> None:
        # Declared only with history on.
        if not hasattr(self, "history_observations"):
            self.history_observations = Counter(
                "tesoro_history_observations",
                "Observations by outcome: written, duplicate (another replica wrote it), "
                "unchanged (nothing new to record) or dropped (the queue was full while the "
                "store could not take them: a gap in history).",
                ["outcome"],
                registry=self.registry,
            )
            self.history_store_errors = Counter(
                "tesoro_history_store_errors",
                "Writes to the history store that failed (each retried, answers unaffected).",
                registry=self.registry,
            )
            self.history_write_lag = Histogram(
                "tesoro_history_write_lag_seconds",
                "From a connection's new data state to its observation being stored.",
                buckets=_LATENCY_BUCKETS_SECONDS,
                registry=self.registry,
            )
            self.history_queue = Gauge(
                "tesoro_history_queue",
                "Observations waiting to be written.",
                registry=self.registry,
            )
            self.history_up = Gauge(
                "tesoro_history_up",
                "1 while the history store takes writes, 0 while it does not.",
                registry=self.registry,
            )

    def observe_history(self, event: str, value: float = 1.0) -> None:
        """What the history recorder did: an observation's outcome (written, duplicate,
        unchanged, dropped), a store `error`, a write's `lag` (seconds), the `queue` length,
        or the store's state (`up`: 1 or 0)."""
        self._history_metrics()
        if event == "error":
            self.history_store_errors.inc()
        elif event == "lag":
            self.history_write_lag.observe(value)
        elif event == "queue":
            self.history_queue.set(value)
        elif event == "up":
            self.history_up.set(value)
        else:
            self.history_observations.labels(event).inc(value)

    def _redis_metrics(self) -> None:
        # Declared only with a shared tier: a deployment without Redis exports none of them.
        if not hasattr(self, "redis_up"):
            self.redis_up = Gauge(
                "tesoro_redis_up",
                "1 while the shared tier (Redis) answers, 0 while this replica serves without it.",
                registry=self.registry,
            )
            self.redis_bad_values = Counter(
                "tesoro_redis_bad_values",
                "Values found in Redis under a tesoro key that tesoro cannot use (another "
                "type, unreadable, a lock without a lifetime): each a miss, deleted or "
                "replaced; by kind of key.",
                ["kind"],
                registry=self.registry,
            )

    def observe_redis(self, up: bool) -> None:
        """The shared tier (Redis) answered (1) or failed (0); absent without TESORO_REDIS_URL."""
        self._redis_metrics()
        self.redis_up.set(1 if up else 0)

    def observe_redis_bad_value(self, kind: str) -> None:
        """A bad value under a tesoro key of this kind (snapshot, failure, lock, ...)."""
        self._redis_metrics()
        self.redis_bad_values.labels(kind).inc()

    def declare_events(self) -> None:
        """The event streams' metrics (GET /events), declared when the hub is first built
        (an app started again keeps its registry)."""
        if hasattr(self, "events_subscribers"):
            return
        self.events_subscribers = Gauge(
            "tesoro_events_subscribers",
            "Event streams (GET /events) this process holds open.",
            registry=self.registry,
        )
        self.events_sent = Counter(
            "tesoro_events_sent",
            "Server-sent events written to streams, by type "
            "(positions, source, consent, reset); one per stream it went to.",
            ["type"],
            registry=self.registry,
        )
        self.events_resets = Counter(
            "tesoro_events_resets",
            "Streams sent `reset`, by reason: slow_consumer (its queue was full: closed, its "
            "events dropped), unknown_id, before_retention, too_far_behind, history_off, "
            "history_unavailable (a Last-Event-ID that could not be replayed).",
            ["reason"],
            registry=self.registry,
        )
        self.events_refused = Counter(
            "tesoro_events_refused",
            "Event streams refused (503) because the process held "
            "TESORO_EVENTS_MAX_SUBSCRIBERS already.",
            registry=self.registry,
        )
