"""A write from nobody is refused (401) before its body is read."""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.auth import admit
from app.api.edge.base import HttpMiddleware, header, send_problem
from app.api.errors import UnauthenticatedError
from app.settings import Settings

# Requests that carry a body: their caller is known before the body is read.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class AuthenticateFirst(HttpMiddleware):
    """A write whose caller is not authenticated is refused (401) before its body is read:
    a malformed or huge body from nobody costs nothing. Scopes are still checked by each
    route's dependency (403)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app)
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] in WRITES and is_a_route(scope):
            try:
                admit(self.settings, header(scope, "authorization") or None)
            except UnauthenticatedError as exc:
                await send_problem(scope, send, exc)
                return
        await self.app(scope, receive, send)


def is_a_route(scope: Scope) -> bool:
    """Whether some route serves this method and path."""
    # Only a write some route serves: an unknown path stays a 404 and a method the path does
    # not serve a 405, whoever asks.
    routes = scope["app"].router.routes
    return any(route.matches(scope)[0] is Match.FULL for route in routes)
