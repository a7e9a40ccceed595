"""What every concern of the edge reads and writes: request headers (Starlette's `Headers`),
whether an answer is an event stream, and a problem answered outside the framework."""

from __future__ import annotations

import json

from starlette.datastructures import Headers
from starlette.types import Message, Scope, Send

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
