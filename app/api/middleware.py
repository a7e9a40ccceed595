"""tesoro's ASGI middleware: request metrics, unexpected errors answered (and logged) once, and
the request body size limit (the per-caller limit is `app.api.limits`)."""

from __future__ import annotations

import gzip
import json
import logging
import re
import time
import uuid
from decimal import Decimal

import zstandard
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import admit, identify
from app.api.errors import (
    PROBLEM_MEDIA_TYPE,
    BodyTooLargeError,
    UnauthenticatedError,
    problem_content,
    problem_of,
)
from app.logs import log_access
from app.metrics import REFUSED_ROUTE, REFUSED_STATUSES, Metrics
from app.settings import Settings
from app.upstreams.http import CURRENT_REQUEST_ID

logger = logging.getLogger("app.api")

MAX_BODY_BYTES = 64 * 1024
# Set in the ASGI scope when the client went away before its answer (`app.api.limits`).
CLIENT_GONE = "tesoro.client_gone"
# What the access line and the metrics say of a request whose client left unanswered
# (nginx's code for it: no answer was sent).
CLIENT_GONE_STATUS = 499


async def send_problem(scope: Scope, send: Send, exc: Exception) -> None:
    """Answer with the table's problem for `exc`, outside the framework's handlers."""
    kind, problem = problem_of(exc, str(scope.get("path", "")))
    body = json.dumps(problem_content(problem)).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [
        (name.lower().encode(), value.encode()) for name, value in kind.headers(exc).items()
    ]
    if isinstance(exc, BodyTooLargeError):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": kind.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str:
    """A request header's first value, as sent (latin-1), or "" when it is not there."""
    return next((v for n, v in scope["headers"] if n == name), b"").decode("latin-1")


class _HttpMiddleware:
    """Base of tesoro's ASGI middleware: anything but HTTP passes straight through to the
    app; HTTP requests go to `handle`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


# Requests that carry a body: their caller is known before the body is read.
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuthenticateFirst(_HttpMiddleware):
    """A write whose caller is not authenticated is refused (401) before its body is read:
    a malformed or huge body from nobody costs nothing. Scopes are still checked by each
    route's dependency (403)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in _WRITES and _is_a_route(scope):
            try:
                admit(self.settings, _header(scope, b"authorization") or None)
            except UnauthenticatedError as exc:
                await send_problem(scope, send, exc)
                return
        await self.app(scope, receive, send)


def _is_a_route(scope: Scope) -> bool:
    # Only a write some route serves: an unknown path stays a 404 and a method the path does
    # not serve a 405, whoever asks.
    routes = scope["app"].router.routes
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


# Set in the scope of a HEAD request answered as a GET (by HeadAsGet).
HEAD_REQUEST = "tesoro.head"


class HeadAsGet(_HttpMiddleware):
    """`HEAD` on every `GET` route: answered as the `GET` would be, headers and all, with
    no body."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        # A copy: the server's own scope still says HEAD (uvicorn then writes no body). Marked,
        # so that a stream (GET /events) answers its headers and ends instead of streaming.
        inner = {**scope, "method": "GET", HEAD_REQUEST: True}
        try:
            await self.app(inner, receive, headers_only)
        finally:
            # The route the router found, for the metrics outside (counted as a HEAD).
            if "route" in inner:
                scope["route"] = inner["route"]


class RequestIds(_HttpMiddleware):
    """`X-Request-ID`: accepted when it is a sane token (else a new one is made), echoed on
    the answer, and forwarded on every upstream call the request makes."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        super().__init__(app)
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        sent = _header(scope, b"x-request-id")
        request_id = sent if self._acceptable(sent) else uuid.uuid4().hex
        token = CURRENT_REQUEST_ID.set(request_id)

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            CURRENT_REQUEST_ID.reset(token)

    def _acceptable(self, sent: str) -> bool:
        # A caller's API key sent as a request id (it looks like one) would be logged and
        # forwarded to the upstreams: it is replaced like any id that is not acceptable.
        if not _REQUEST_ID.fullmatch(sent):
            return False
        return self.settings is None or identify(self.settings, sent) is None


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# Bodies smaller than this are sent as they are: compressing them saves nothing worth it.
MIN_COMPRESSED_BYTES = 1024
_COMPRESSIBLE = (b"application/json", b"application/problem+json", b"text/")


def _accepted(scope: Scope) -> str | None:
    return accepted_encoding(_header(scope, b"accept-encoding"))


def accepted_encoding(header: str) -> str | None:
    """The encoding to answer with, from an Accept-Encoding value: zstd when the caller
    accepts it, else gzip, else none."""
    offered: dict[str, Decimal] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        quality = Decimal(1)
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = Decimal(value.strip())
                except ArithmeticError:
                    quality = Decimal(0)
                if not quality.is_finite():
                    quality = Decimal(0)
        if name:
            offered[name.strip().lower()] = quality
    for encoding in ("zstd", "gzip"):
        if offered.get(encoding, offered.get("*", Decimal(0))) > 0:
            return encoding
    return None


def _compress(body: bytes, encoding: str) -> bytes:
    # The fastest levels: most of the size goes at level 1, and this runs per answer.
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(body)
    return gzip.compress(body, compresslevel=1, mtime=0)


STREAM_MEDIA_TYPE = b"text/event-stream"


def is_stream(start: Message) -> bool:
    """An event stream (`text/event-stream`): each event must leave as it is written."""
    return any(
        name == b"content-type" and value.startswith(STREAM_MEDIA_TYPE)
        for name, value in start.get("headers", [])
    )


class Compression(_HttpMiddleware):
    """gzip, or zstd where the caller accepts it, for JSON and text bodies over about 1 KB;
    `Vary: Accept-Encoding` always; an encoded body's ETag is made weak (it names the data,
    not these bytes). An event stream passes as it is, neither buffered nor compressed."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoding = _accepted(scope)
        start: Message | None = None
        chunks: list[bytes] = []
        streaming = False

        async def buffered(message: Message) -> None:
            nonlocal start, streaming
            if message["type"] == "http.response.start":
                if is_stream(message):
                    streaming = True
                    await send(message)
                    return
                start = message
                return
            if streaming or message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            await self._answer(start, b"".join(chunks), encoding, send)

        await self.app(scope, receive, buffered)

    @staticmethod
    async def _answer(start: Message, body: bytes, encoding: str | None, send: Send) -> None:
        headers = [(n, v) for n, v in start.get("headers", []) if n != b"vary"]
        vary = [v for n, v in start.get("headers", []) if n == b"vary"]
        headers.append((b"vary", b", ".join([*vary, b"Accept-Encoding"])))
        content_type = next((v for n, v in headers if n == b"content-type"), b"")
        if (
            encoding is not None
            and len(body) >= MIN_COMPRESSED_BYTES
            and content_type.startswith(_COMPRESSIBLE)
            and not any(n == b"content-encoding" for n, _ in headers)
        ):
            body = _compress(body, encoding)
            headers = [
                (n, b"W/" + v if n == b"etag" and not v.startswith(b"W/") else v)
                for n, v in headers
                if n != b"content-length"
            ]
            headers += [
                (b"content-encoding", encoding.encode()),
                (b"content-length", str(len(body)).encode()),
            ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _StartTracking:
    """A `send` that remembers whether the answer has begun (then no problem can replace it)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


class UnexpectedErrors(_HttpMiddleware):
    """A bug of tesoro's: logged once, with its traceback, and answered as a 500 problem
    (never re-raised, so the server does not log it a second time)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = _StartTracking(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            logger.exception(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if not tracked.started:
                await send_problem(scope, send, exc)


class BodySizeLimit(_HttpMiddleware):
    """Refuses bodies over `max_bytes`, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await send_problem(scope, send, BodyTooLargeError(self.max_bytes))
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(self.max_bytes)
            return message

        tracked = _StartTracking(send)
        try:
            await self.app(scope, counting_receive, tracked)
        except BodyTooLargeError as exc:
            if not tracked.started:
                await send_problem(scope, send, exc)


# Label values a caller cannot grow without bound: unknown methods and paths share one each.
UNMATCHED_ROUTE = "unmatched"
OTHER_METHOD = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: Scope) -> str:
    """The matched route's template (`/counterparties/{counterparty_id}`), never the raw path."""
    route = scope.get("route")
    if route is None and "app" in scope:
        # Starlette's plain routes (FastAPI's /docs, /redoc, /openapi.json) do not name
        # themselves in the scope as tesoro's do: found by matching, which only requests
        # without a named route (those and unknown paths) pay.
        route = next(
            (
                candidate
                for candidate in scope["app"].router.routes
                if candidate.matches(scope)[0] is Match.FULL
            ),
            None,
        )
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED_ROUTE


def method_label(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else OTHER_METHOD


class RequestMetrics(_HttpMiddleware):
    """ASGI middleware counting and timing requests by route template (bounded labels), and
    writing the one access line of each request (`app.logs.log_access`). A body refused
    for its size (413) is counted under the fixed route `<refused>`."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        super().__init__(app)
        self.metrics = metrics

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started_seconds = time.perf_counter()
        # What the server error handler outside this middleware answers when the app raises.
        status = 500
        started = False

        async def send_status(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if not started and scope.get(CLIENT_GONE):
                status = CLIENT_GONE_STATUS
            seconds = time.perf_counter() - started_seconds
            route = REFUSED_ROUTE if status in REFUSED_STATUSES else route_label(scope)
            method = method_label(scope)
            self.metrics.observe_request(route, method, status, seconds)
            log_access(method, route, status, seconds)
