"""CORS: browsers on the configured origins may call tesoro; the rest get no CORS headers.
Starlette's own rules (`CORSMiddleware`), used as functions rather than as a layer."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import Scope, Send

ALLOWED_METHODS = ("GET", "HEAD", "POST", "OPTIONS")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-None-Match",
    "Idempotency-Key",
    "X-Request-ID",
    "Cache-Control",
    # A browser's stream client resumes GET /events with it.
    "Last-Event-ID",
)
EXPOSED_HEADERS = ("ETag", "Location", "Retry-After", "X-Request-ID")


async def _unused(scope: Scope, receive: object, send: object) -> None:
    raise AssertionError("the edge calls the CORS rules, never the middleware")


class Cors:
    """The CORS rules for `origins`."""

    def __init__(self, origins: Sequence[str]) -> None:
        self._rules = CORSMiddleware(
            _unused,
            allow_origins=origins,
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )

    def preflight(self, method: str, headers: Headers) -> Response | None:
        """The answer to a preflight request, or None when this is not one."""
        asks = "origin" in headers and "access-control-request-method" in headers
        if method == "OPTIONS" and asks:
            return self._rules.preflight_response(request_headers=headers)
        return None

    def sending(self, send: Send, headers: Headers) -> Send:
        """A `send` that adds the CORS headers this request's origin gets."""
        return partial(self._rules.send, send=send, request_headers=headers)
