"""`Edge`: the one ASGI layer every HTTP request passes through, doing once what each needs.

In order, outside in: the request id; the per-caller limit (429) and, for a read, stopping
it when its client goes away; CORS; HEAD as GET; content negotiation and encoding; a write
from nobody refused before its body (401); the body limit (413); a bug answered as a logged
500 problem. Metrics and the access line are written when the request ends, whatever ended
it. Each concern is a module of this package, called as plain functions: one layer, not a
stack of wrappers each awaiting the next.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import Caller, admitted
from app.api.caching import GATHERED_AT_THE_EDGE
from app.api.edge.auth import unauthenticated_write
from app.api.edge.base import is_stream, send_problem
from app.api.edge.compression import accepted_encoding, negotiated
from app.api.edge.cors import Cors
from app.api.edge.fast import HEALTH_PATH, FastPath
from app.api.edge.head import as_get, headers_only
from app.api.edge.limits import (
    MAX_BODY_BYTES,
    REFUSAL_PAUSE_SECONDS,
    InFlight,
    cancelled_when_gone,
    counted_as,
    counting,
    declared_too_large,
    is_cancellable,
    is_limited,
)
from app.api.edge.metrics import observe_request
from app.api.edge.request_ids import HEADER as REQUEST_ID_HEADER
from app.api.edge.request_ids import request_id_of, with_request_id
from app.api.errors import BodyTooLargeError, CallerBusyError
from app.metrics import Metrics
from app.settings import Settings
from app.upstreams.http import CURRENT_REQUEST_ID

logger = logging.getLogger("app.api")


class Edge:
    """The edge of the app `app` (anything but HTTP passes straight through)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        metrics: Metrics,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        refusal_pause_seconds: float = REFUSAL_PAUSE_SECONDS,
        fast: FastPath | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.refusal_pause_seconds = refusal_pause_seconds
        self.in_flight = InFlight(settings.caller_max_in_flight)
        self.cors = Cors(settings.cors_origins) if settings.cors_origins else None
        # None: every request goes to FastAPI (the equivalence test compares both ways).
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_seconds = time.perf_counter()
        headers = Headers(scope=scope)
        authorization = headers.get("authorization", "")
        request_id = request_id_of(self.settings, headers.get("x-request-id", ""))
        sent_id = request_id.encode()
        token = CURRENT_REQUEST_ID.set(request_id)
        status: int | None = None
        release: Callable[[], None] | None = None

        async def answer(message: Message) -> None:
            # Every answer, refusals included, carries its request id and is counted.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if release is not None and is_stream(message):
                    # An event stream (GET /events) is in flight only until its headers are
                    # sent: it lasts for hours. Streams are bounded per process instead
                    # (TESORO_EVENTS_MAX_SUBSCRIBERS).
                    release()
                message = with_request_id(message, sent_id)
            await send(message)

        try:
            if not is_limited(scope):
                if scope["path"] == HEALTH_PATH:
                    status = await self._fast(scope, answer, headers, None, (send, sent_id))
                    if status is not None:
                        return
                await self._serve(scope, receive, answer, headers, authorization)
                if self.fast is not None and scope["path"] == HEALTH_PATH:
                    self.fast.learn_health(scope, status)
                return
            # The key is hashed once: the caller counted is the one the fast path admits.
            caller = admitted(self.settings, authorization)
            release = self.in_flight.take(counted_as(self.settings, scope, caller))
            if release is None:
                self.metrics.observe_rejected("caller_in_flight")
                await asyncio.sleep(self.refusal_pause_seconds)
                await send_problem(scope, answer, CallerBusyError(self.in_flight.max_in_flight))
                return
            try:
                status = await self._fast(scope, answer, headers, caller, (send, sent_id))
                if status is not None:
                    return
                if is_cancellable(scope):
                    serve = partial(self._serve, headers=headers, authorization=authorization)
                    await cancelled_when_gone(serve, scope, receive, answer, release)
                else:
                    await self._serve(scope, receive, answer, headers, authorization)
            finally:
                release()
        finally:
            observe_request(self.metrics, scope, status, time.perf_counter() - started_seconds)
            CURRENT_REQUEST_ID.reset(token)

    async def _fast(
        self,
        scope: Scope,
        send: Send,
        headers: Headers,
        caller: Caller | None,
        server: tuple[Send, bytes],
    ) -> int | None:
        """The status sent when the request was answered from a kept answer
        (`fast.FastPath`), or is `GET /healthz`, through the same CORS and HEAD steps as
        FastAPI's answers (the answer comes as the encoding step leaves it); None when it
        goes on to FastAPI. `send` adds the request id (`with_request_id`); without CORS,
        the answer goes to the server's own `send` (`server`: it and the request id) with
        the id added here, in the same place, to a header list made for this answer."""
        method = scope["method"]
        if self.fast is None or method not in ("GET", "HEAD"):
            return None
        if declared_too_large(scope, self.max_body_bytes):
            return None
        if scope["path"] == HEALTH_PATH:
            answered = self.fast.health(scope)
        else:
            inner = scope if method == "GET" else as_get(scope)
            answered = await self.fast.answer(inner, headers, caller)
            if inner is not scope:
                # What the fast path left for the route (the data state it gathered) and
                # the route it answered for (the metrics') belong to the request, HEAD or
                # not.
                for key in (GATHERED_AT_THE_EDGE, "route"):
                    if key in inner:
                        scope[key] = inner[key]
        if answered is None:
            return None
        status, raw_headers, body = answered
        if self.cors is not None:
            send = self.cors.sending(send, headers)
        else:
            send, sent_id = server
            raw_headers.append((REQUEST_ID_HEADER, sent_id))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        return status

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, authorization: str
    ) -> None:
        if self.cors is not None:
            preflight = self.cors.preflight(scope["method"], headers)
            if preflight is not None:
                await preflight(scope, receive, send)
                return
            send = self.cors.sending(send, headers)
        inner = scope
        if scope["method"] == "HEAD":
            inner = as_get(scope)
            send = headers_only(send)
        encoding = accepted_encoding(headers.get("accept-encoding", ""))
        try:
            await self._app(inner, receive, negotiated(send, encoding), authorization)
        finally:
            if inner is not scope and "route" in inner:
                # The route the router found, for the metrics (counted as a HEAD).
                scope["route"] = inner["route"]

    async def _app(self, scope: Scope, receive: Receive, send: Send, authorization: str) -> None:
        refused = unauthenticated_write(self.settings, scope, authorization)
        if refused is not None:
            await send_problem(scope, send, refused)
            return
        if declared_too_large(scope, self.max_body_bytes):
            await send_problem(scope, send, BodyTooLargeError(self.max_body_bytes))
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting(receive, self.max_body_bytes), tracked)
        except Exception as exc:
            # A bug of tesoro's: logged once, with its traceback, and answered as a 500
            # problem (never re-raised, so the server does not log it a second time).
            logger.exception(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if not started:
                await send_problem(scope, send, exc)
