"""`X-Request-ID`: accepted when it is a sane token (else a new one is made), echoed on the
answer, and forwarded on every upstream call the request makes (`CURRENT_REQUEST_ID`)."""

from __future__ import annotations

import itertools
import re
import secrets

from starlette.types import Message

from app.api.auth import identify
from app.settings import Settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HEADER = b"x-request-id"
# A made id is this process's random prefix and a counter: unique like a uuid4 (32 hex
# digits) without reading the system's random source on every request.
_PREFIX = secrets.token_hex(8)
_COUNTER = itertools.count()


def new_request_id() -> str:
    """A request id nobody sent: unique in this process and, by its random prefix, others."""
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id_of(settings: Settings | None, sent: str) -> str:
    """The request id to use: the one sent when it is acceptable, else a new one."""
    return sent if sent and _acceptable(settings, sent) else new_request_id()


def _acceptable(settings: Settings | None, sent: str) -> bool:
    # A caller's API key sent as a request id (it looks like one) would be logged and
    # forwarded to the upstreams: it is replaced like any id that is not acceptable.
    if not _REQUEST_ID.fullmatch(sent):
        return False
    return settings is None or identify(settings, sent) is None


def with_request_id(start: Message, request_id: bytes) -> Message:
    """The answer's start carrying the request id (in place of any the app set)."""
    headers = [(n, v) for n, v in start.get("headers", []) if n != HEADER]
    headers.append((HEADER, request_id))
    return {**start, "headers": headers}
