"""Caller authentication: bearer keys checked by SHA-256 in constant time, with scopes."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.errors import ProblemError
from app.settings import Scope, Settings

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API key issued to the calling service: `Authorization: Bearer <key>`.",
)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tesoro"'}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the configured name of their key (empty when auth is off)."""

    name: str
    scopes: frozenset[str]


ANONYMOUS = Caller(name="", scopes=frozenset({"read", "write"}))


def identify(settings: Settings, token: str) -> Caller | None:
    """The caller whose key's SHA-256 matches, or None. Compares against every key."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    found: Caller | None = None
    for name, key in settings.api_keys.items():
        # Constant time per key, and every key is compared, so timing tells nothing.
        if hmac.compare_digest(digest, key.sha256):
            found = Caller(name=name, scopes=frozenset(key.scopes))
    return found


def caller_of(request: Request) -> Caller:
    """The caller `require` admitted for this request."""
    caller: Caller = getattr(request.state, "caller", ANONYMOUS)
    return caller


def require(scope: Scope) -> Callable[..., Coroutine[Any, Any, None]]:
    """A dependency that admits callers whose key carries `scope`."""

    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope]),  # noqa: B008
    ) -> None:
        settings: Settings = request.app.state.settings
        if not settings.auth_required:
            request.state.caller = ANONYMOUS
            return
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise ProblemError(
                401,
                "send an API key as `Authorization: Bearer <key>`",
                kind="unauthorized",
                headers=_CHALLENGE,
            )
        caller = identify(settings, credentials.credentials)
        if caller is None:
            raise ProblemError(
                401, "the API key is not valid", kind="unauthorized", headers=_CHALLENGE
            )
        if scope not in caller.scopes:
            raise ProblemError(403, f"the API key lacks the `{scope}` scope", kind="forbidden")
        request.state.caller = caller

    return check
