"""Request metrics by route template (bounded labels) and the one access line per request."""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import Scope

from app.api.edge.base import CLIENT_GONE, CLIENT_GONE_STATUS
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


def observe_request(metrics: Metrics, scope: Scope, status: int | None, seconds: float) -> None:
    """Count and time a request by its route template, and write its access line. `status`
    is None when no answer was sent: a client gone is a 499, anything else a 500 (what the
    server answers for an app that raised). A body refused for its size (413) is counted
    under the fixed route `<refused>`."""
    if status is None:
        status = CLIENT_GONE_STATUS if scope.get(CLIENT_GONE) else 500
    route = REFUSED_ROUTE if status in REFUSED_STATUSES else route_label(scope)
    method = method_label(scope)
    metrics.observe_request(route, method, status, seconds)
    log_access(method, route, status, seconds)
