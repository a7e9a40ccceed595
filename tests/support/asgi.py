"""Running an app in-process as a server would: its lifespan, and its state in every request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


@asynccontextmanager
async def started(app: Any) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan running; the returned ASGI app hands the lifespan's state to
    each request (`scope["state"]`), as uvicorn does, so `httpx2.ASGITransport` can call it."""
    async with app.router.lifespan_context(app) as state:
        shared: Mapping[str, Any] = state or {}

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                scope = {**scope, "state": dict(shared)}
            await app(scope, receive, send)

        yield with_state
