"""Caller authentication: bearer keys checked by SHA-256 in constant time, with scopes."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes

from app.api.errors import ForbiddenError, UnauthenticatedError
from app.api.state import get_settings
from app.settings import Settings

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="An API key issued to the calling service: `Authorization: Bearer <key>`.",
)


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


def admit(settings: Settings, authorization: str | None) -> Caller:
    """The caller an `Authorization` header names; UnauthenticatedError when it names none."""
    if not settings.auth_required:
        return ANONYMOUS
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("send an API key as `Authorization: Bearer <key>`")
    caller = identify(settings, token.strip())
    if caller is None:
        raise UnauthenticatedError("the API key is not valid")
    return caller


def admitted(settings: Settings, authorization: str | None) -> Caller | None:
    """The caller `admit` admits, or None when it refuses: the key is hashed once, and the
    answer serves both the per-caller limit and the fast path at the edge."""
    try:
        return admit(settings, authorization)
    except UnauthenticatedError:
        return None


async def authenticate(
    security_scopes: SecurityScopes,
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    """The caller, admitted when their key carries every scope the operation declares."""
    header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
    caller = admit(settings, header)
    for scope in security_scopes.scopes:
        if scope not in caller.scopes:
            raise ForbiddenError(f"the API key lacks the `{scope}` scope")
    return caller
