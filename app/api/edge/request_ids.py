"""`X-Request-ID`: accepted when it is a sane token (else a new one is made), echoed on the
answer, and forwarded on every upstream call the request makes (`CURRENT_REQUEST_ID`)."""

from __future__ import annotations

import re
import uuid

from starlette.types import Message

from app.api.auth import identify
from app.settings import Settings

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
HEADER = b"x-request-id"


def request_id_of(settings: Settings | None, sent: str) -> str:
    """The request id to use: the one sent when it is acceptable, else a new one."""
    return sent if _acceptable(settings, sent) else uuid.uuid4().hex


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
