"""Request metrics by route template (bounded labels) and the one access line per request."""

from __future__ import annotations

import time

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.edge.base import CLIENT_GONE, CLIENT_GONE_STATUS, HttpMiddleware
from app.logs import log_access
from app.metrics import REFUSED_ROUTE, REFUSED_STATUSES, Metrics

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


class RequestMetrics(HttpMiddleware):
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
