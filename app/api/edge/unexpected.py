"""A bug of tesoro's: logged once with its traceback, answered as a 500 problem."""

from __future__ import annotations

import logging

from starlette.types import Receive, Scope, Send

from app.api.edge.base import HttpMiddleware, StartTracking, send_problem

logger = logging.getLogger("app.api")


class UnexpectedErrors(HttpMiddleware):
    """A bug of tesoro's: logged once, with its traceback, and answered as a 500 problem
    (never re-raised, so the server does not log it a second time)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = StartTracking(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            logger.exception(
                "unhandled error on %s %s", scope.get("method"), scope.get("path"), exc_info=exc
            )
            if not tracked.started:
                await send_problem(scope, send, exc)
