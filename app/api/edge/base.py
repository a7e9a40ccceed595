"""The edge's ASGI base: HTTP requests go to `handle`, anything else straight through; request
headers read with Starlette's `Headers`; a problem answered outside the framework."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import PROBLEM_MEDIA_TYPE, BodyTooLargeError, problem_content, problem_of

# Set in the ASGI scope when the client went away before its answer (`edge.limits`).
CLIENT_GONE = "tesoro.client_gone"
# What the access line and the metrics say of a request whose client left unanswered
# (nginx's code for it: no answer was sent).
CLIENT_GONE_STATUS = 499
STREAM_MEDIA_TYPE = b"text/event-stream"


def header(scope: Scope, name: str) -> str:
    """A request header's first value, as sent (latin-1), or "" when it is not there."""
    return Headers(scope=scope).get(name, "")


def is_stream(start: Message) -> bool:
    """An event stream (`text/event-stream`): each event must leave as it is written."""
    return any(
        name == b"content-type" and value.startswith(STREAM_MEDIA_TYPE)
        for name, value in start.get("headers", [])
    )


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


class HttpMiddleware:
    """Base of the edge's ASGI middleware: anything but HTTP passes straight through to the
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


class StartTracking:
    """A `send` that remembers whether the answer has begun (then no problem can replace it)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)
