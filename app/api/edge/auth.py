"""A write from nobody is refused (401) before its body is read: a malformed or huge body
from nobody costs nothing. Scopes are still checked by each route's dependency (403)."""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import Scope

from app.api.auth import admit
from app.api.errors import UnauthenticatedError
from app.settings import Settings

# Requests that carry a body: their caller is known before the body is read.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def unauthenticated_write(
    settings: Settings, scope: Scope, authorization: str
) -> UnauthenticatedError | None:
    """Why a write some route serves is refused before its body is read, or None."""
    if scope["method"] not in WRITES or not is_a_route(scope):
        return None
    try:
        admit(settings, authorization or None)
    except UnauthenticatedError as exc:
        return exc
    return None


def is_a_route(scope: Scope) -> bool:
    """Whether some route serves this method and path."""
    # Only a write some route serves: an unknown path stays a 404 and a method the path does
    # not serve a 405, whoever asks.
    routes = scope["app"].router.routes
    return any(route.matches(scope)[0] is Match.FULL for route in routes)
