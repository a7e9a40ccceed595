"""`HEAD` on every `GET` route: answered as the `GET` would be, without its body."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from app.api.edge.base import HttpMiddleware

# Set in the scope of a HEAD request answered as a GET (by HeadAsGet).
HEAD_REQUEST = "tesoro.head"


class HeadAsGet(HttpMiddleware):
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
