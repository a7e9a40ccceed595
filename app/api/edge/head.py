"""`HEAD` on every `GET` route: answered as the `GET` would be, headers and all, with no
body."""

from __future__ import annotations

from typing import Any

from starlette.types import Message, Scope, Send

# Set in the scope of a HEAD request answered as a GET, so that a stream (GET /events)
# answers its headers and ends instead of streaming.
HEAD_REQUEST = "tesoro.head"


def as_get(scope: Scope) -> dict[str, Any]:
    """The scope the app sees for a HEAD: a marked GET. A copy: the server's own scope still
    says HEAD (uvicorn then writes no body)."""
    return {**scope, "method": "GET", HEAD_REQUEST: True}


def headers_only(send: Send) -> Send:
    """A `send` that passes the answer's start and ends it without its body."""

    async def without_body(message: Message) -> None:
        if message["type"] == "http.response.body":
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})
            return
        await send(message)

    return without_body
