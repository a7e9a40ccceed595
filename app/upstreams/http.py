"""Shared plumbing of the upstream adapters: one request path, one error translation."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NoReturn, TypeVar

import anyio
import httpx2
import stamina
from pydantic import TypeAdapter, ValidationError

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamOutcomeUnknownError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)

T = TypeVar("T")

ErrorMapper = Callable[[httpx2.Response, Any], UpstreamError]

# The id of the request being served, if any: sent on every upstream call it makes.
CURRENT_REQUEST_ID: ContextVar[str | None] = ContextVar("tesoro_request_id", default=None)
# The connection (`finsync`, `finqware:<consent>`) a load is for, if any: upstream calls'
# log lines and spans name it (set by the connection's circuit breaker guard).
CURRENT_CONNECTION: ContextVar[str | None] = ContextVar("tesoro_connection", default=None)

logger = logging.getLogger(__name__)

# tesoro logs each retry itself (one line naming the upstream and the connection) and counts
# it in its own registry: stamina's default hooks would log the same retry a second time
# (structlog's `stamina.retry_scheduled`) and count it in a global registry nobody serves.
stamina.instrumentation.set_on_retry_hooks(())


def load_transport_backend() -> None:
    """Import now what httpx2's transport imports on its first call: anyio's backend for the
    running event loop (httpcore2 asks anyio for an `Event` the first time a request waits
    for a connection). Left to the first upstream call, that import ran on the event loop
    inside the first cold load and held it 50 to 170 ms: every request waited, `/healthz`
    included, and the first upstream calls went out that much later. Call it on the loop
    that will make the calls, before the first one (the app's start does)."""
    anyio.Event()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"non-finite number {name} in upstream JSON")


def _integer(text: str) -> int | Decimal:
    # Python refuses to build an int from more than 4300 digits (a ValueError that would fail
    # the whole answer); a long integer is kept as a Decimal for the field to judge.
    return int(text) if len(text) <= _INT_DIGITS else Decimal(text)


_INT_DIGITS = 40


def decode_json(content: bytes) -> Any:
    """Decode JSON keeping every number exact: floats become Decimal, NaN is refused, and
    integers too long for Python's int become Decimal."""
    return json.loads(
        content, parse_float=Decimal, parse_int=_integer, parse_constant=_reject_constant
    )


def try_decode_json(response: httpx2.Response) -> Any:
    """The decoded body of an error answer, or None when it is not JSON."""
    try:
        return decode_json(response.content)
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How a read is tried again after a transient failure: jittered exponential waits, at
    most `attempts` tries, all of it within `deadline_seconds`."""

    attempts: int = 3
    deadline_seconds: float = 10.0
    wait_initial_seconds: float = 0.1
    wait_max_seconds: float = 1.0
    # Told the upstream's name before each try after the first (metrics count retries).
    on_retry: Callable[[str], None] | None = field(default=None, compare=False)


NO_RETRIES = RetryPolicy(attempts=1)


def _worth_retrying(exc: Exception) -> bool:
    # A dropped connection, a 5xx or a proxy's page, a rate limit (Finqware's bank limit comes
    # as a 400): another try may succeed. A time-out already spent its time: not retried.
    return isinstance(exc, UpstreamUnavailableError | UpstreamRateLimitedError)


async def send(
    client: httpx2.AsyncClient,
    upstream: str,
    method: str,
    url: str,
    *,
    map_error: ErrorMapper,
    params: Mapping[str, str | int] | None = None,
    json_body: Any = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool = True,
    retries: RetryPolicy = NO_RETRIES,
    raw: bool = False,
) -> Any:
    """Send one request and return its decoded JSON body, or raise an UpstreamError.

    With `raw`, a successful answer is returned as the response itself, undecoded (see
    `send_raw`); failures are mapped the same way.

    A read is retried by `retries` on transient failures; a write never is. A
    non-idempotent request that may have reached the upstream before failing raises
    UpstreamOutcomeUnknownError, so the caller checks before resending.
    """
    once = functools.partial(
        _send_once,
        client,
        upstream,
        method,
        url,
        map_error=map_error,
        params=params,
        json_body=json_body,
        headers=headers,
        idempotent=idempotent,
        raw=raw,
    )
    if not idempotent or retries.attempts <= 1:
        return await once()
    async for attempt in stamina.retry_context(
        on=_worth_retrying,
        attempts=retries.attempts,
        timeout=retries.deadline_seconds,
        wait_initial=retries.wait_initial_seconds,
        wait_max=retries.wait_max_seconds,
        wait_jitter=retries.wait_initial_seconds,
    ):
        if attempt.num > 1:
            logger.info(
                "%s %s: try %d after a transient failure",
                upstream,
                method,
                attempt.num,
                extra={"upstream": upstream, "connection": CURRENT_CONNECTION.get()},
            )
            if retries.on_retry is not None:
                retries.on_retry(upstream)
        with attempt:
            return await once()
    raise AssertionError("stamina returns or raises")  # pragma: no cover


async def _send_once(
    client: httpx2.AsyncClient,
    upstream: str,
    method: str,
    url: str,
    *,
    map_error: ErrorMapper,
    params: Mapping[str, str | int] | None,
    json_body: Any,
    headers: Mapping[str, str] | None,
    idempotent: bool,
    raw: bool = False,
) -> Any:
    content = None if json_body is None else json.dumps(json_body).encode()
    request_headers = {"accept": "application/json"}
    request_id = CURRENT_REQUEST_ID.get()
    if request_id is not None:
        request_headers["x-request-id"] = request_id
    if content is not None:
        request_headers["content-type"] = "application/json"
    if headers:
        request_headers.update(headers)
    try:
        response = await client.request(
            method, url, params=params, content=content, headers=request_headers
        )
    except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
        # Nothing was sent: safe to report as a plain failure even for writes.
        if isinstance(exc, httpx2.TimeoutException):
            raise UpstreamTimeoutError(upstream, "timed out connecting") from exc
        raise UpstreamUnavailableError(upstream, "could not connect") from exc
    except httpx2.RequestError as exc:
        raise _for_write(_request_failure(upstream, exc), idempotent=idempotent) from exc
    if response.is_success:
        if raw:
            return response
        try:
            return decode_json(response.content)
        except ValueError as exc:
            # For a write, it went through but what it made cannot be read from the answer.
            bad = UpstreamBadResponseError(
                upstream, f"answer {response.status_code} is not valid JSON"
            )
            raise _for_write(bad, idempotent=idempotent) from exc
    raise map_error(response, try_decode_json(response))


async def send_raw(
    client: httpx2.AsyncClient,
    upstream: str,
    url: str,
    *,
    map_error: ErrorMapper,
    accept: str,
    params: Mapping[str, str | int] | None = None,
    retries: RetryPolicy = NO_RETRIES,
) -> httpx2.Response:
    """`send` for a read whose body is not JSON (the BNR's XML, the ECB's CSV): a GET
    asking for `accept`, whose successful answer comes back undecoded for the adapter to
    read and judge (status 200 is not yet data: it may be an HTML page). Transport failures,
    retries and error statuses go through `send`'s one path."""
    response: httpx2.Response = await send(
        client,
        upstream,
        "GET",
        url,
        map_error=map_error,
        params=params,
        headers={"accept": accept},
        retries=retries,
        raw=True,
    )
    return response


# Failures once the request may have reached the upstream, most specific first.
_REQUEST_FAILURES: tuple[tuple[type[httpx2.RequestError], type[UpstreamError], str], ...] = (
    (httpx2.TimeoutException, UpstreamTimeoutError, "timed out waiting for the answer"),
    (httpx2.TransportError, UpstreamUnavailableError, "connection lost before the answer"),
    # An answer came, but its body could not be read (a broken content encoding).
    (httpx2.DecodingError, UpstreamBadResponseError, "the answer could not be read"),
    # Anything else httpx2 raises for a request (e.g. too many redirects).
    (httpx2.RequestError, UpstreamUnavailableError, "the request failed"),
)


def _request_failure(upstream: str, exc: httpx2.RequestError) -> UpstreamError:
    for kind, error, message in _REQUEST_FAILURES:
        if isinstance(exc, kind):
            return error(upstream, message)
    raise AssertionError("RequestError closes the table")  # pragma: no cover


def _for_write(error: UpstreamError, *, idempotent: bool) -> UpstreamError:
    """A write that may have landed has an unknown outcome, whatever else went wrong."""
    if idempotent:
        return error
    return UpstreamOutcomeUnknownError(error.upstream, error.message)


def parse(upstream: str, adapter: TypeAdapter[T], data: Any, what: str) -> T:
    """Validate decoded JSON into wire models; a mismatch is a contract break."""
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UpstreamBadResponseError(
            upstream, f"unexpected {what}: {where}: {first['msg']}"
        ) from exc


def generic_status_error(upstream: str, response: httpx2.Response) -> UpstreamError:
    """The translation shared by both upstreams for statuses they do not special-case."""
    status = response.status_code
    if status == 429:
        return UpstreamRateLimitedError(upstream, "rate limited")
    if status == 403:
        return UpstreamUnauthorizedError(upstream, "access was refused (403)")
    if status >= 500 or status in (408, 502, 503, 504):
        return UpstreamUnavailableError(upstream, f"answered {status}")
    if "json" not in response.headers.get("content-type", ""):
        return UpstreamBadResponseError(upstream, f"answered {status} without JSON")
    return UpstreamBadResponseError(upstream, f"unexpected status {status}")


def first_upstream_error(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first UpstreamError in a task group's failures, else the group itself."""
    for failure in failures.exceptions:
        if isinstance(failure, BaseExceptionGroup):
            failure = first_upstream_error(failure)
        if isinstance(failure, UpstreamError):
            return failure
    return failures


class ObservedClient(httpx2.AsyncClient):
    """An upstream's HTTP client that reports the outcome and duration of every call it sends
    (metrics listen): the status code, `timeout`, `transport_error`, `cancelled` or `error`.
    Each call is logged (DEBUG; a failure at WARNING, with the connection it was for) and,
    with tracing on, wrapped in a span (`span`, from `app.tracing`).

    Counting in `send`, not in a wrapping transport, leaves the transport to httpx2: with
    none injected it builds its own, with HTTP/2 when asked and proxies from the environment.
    """

    def __init__(
        self,
        *,
        observe: Callable[[str, float], None],
        upstream: str = "upstream",
        span: SpanFactory | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._observe = observe
        self._upstream = upstream
        self._span = span

    async def send(self, request: httpx2.Request, **options: Any) -> httpx2.Response:
        if self._span is None:
            return await self._send(request, options, None)
        with self._span(self._upstream, request.method, request.url.path) as outcome:
            return await self._send(request, options, outcome)

    async def _send(
        self, request: httpx2.Request, options: dict[str, Any], span: SpanOutcome | None
    ) -> httpx2.Response:
        started_seconds = time.perf_counter()
        outcome = "error"
        try:
            response = await super().send(request, **options)
        except httpx2.TimeoutException:
            outcome = "timeout"
            raise
        except httpx2.TransportError:
            outcome = "transport_error"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        else:
            outcome = str(response.status_code)
            return response
        finally:
            seconds = time.perf_counter() - started_seconds
            self._observe(outcome, seconds)
            if span is not None:
                span(outcome)
            self._log(request, outcome, seconds)

    def _log(self, request: httpx2.Request, outcome: str, seconds: float) -> None:
        # The path only: query strings may carry credentials (and ids say nothing useful).
        failed = not outcome.isdigit() or int(outcome) >= 500
        level = logging.WARNING if failed and outcome != "cancelled" else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "%s %s %s: %s",
                self._upstream,
                request.method,
                request.url.path,
                outcome,
                extra={
                    "upstream": self._upstream,
                    "connection": CURRENT_CONNECTION.get(),
                    "outcome": outcome,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )


SpanOutcome = Callable[[str], None]
"""Told the call's outcome (status code, `timeout`, ...) before its span ends."""
SpanFactory = Callable[[str, str, str], AbstractContextManager[SpanOutcome]]
"""`span(upstream, method, path)`: a span around one upstream call."""
