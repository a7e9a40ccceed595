"""`X-Request-ID`: taken from the caller when sane, else made; echoed and forwarded upstream."""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import identify
from app.api.edge.base import HttpMiddleware, header
from app.settings import Settings
from app.upstreams.http import CURRENT_REQUEST_ID

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(settings: Settings | None, sent: str) -> str:
    """The request id to use: the one sent when it is acceptable, else a new one."""
    return sent if _acceptable(settings, sent) else uuid.uuid4().hex


def _acceptable(settings: Settings | None, sent: str) -> bool:
    # A caller's API key sent as a request id (it looks like one) would be logged and
    # forwarded to the upstreams: it is replaced like any id that is not acceptable.
    if not _REQUEST_ID.fullmatch(sent):
        return False
    return settings is None or identify(settings, sent) is None


class RequestIds(HttpMiddleware):
    """`X-Request-ID`: accepted when it is a sane token (else a new one is made), echoed on
    the answer, and forwarded on every upstream call the request makes."""

    def __init__(self, app: ASGIApp, settings: Settings | None = None) -> None:
        super().__init__(app)
        self.settings = settings

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = request_id_of(self.settings, header(scope, "x-request-id"))
        token = CURRENT_REQUEST_ID.set(request_id)

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(n, v) for n, v in message.get("headers", []) if n != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            CURRENT_REQUEST_ID.reset(token)
