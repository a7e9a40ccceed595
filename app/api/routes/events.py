"""`GET /events`: changes as they happen, as server-sent events (`app.services.events`)."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.api.deps import EventsDep, Reader
from app.api.edge.head import HEAD_REQUEST
from app.api.errors import problem_responses
from app.services.events import EventHub, Subscriber

router = APIRouter(tags=["events"])

MEDIA_TYPE = "text/event-stream"
# No proxy or browser keeps, delays or rewrites a stream (nginx reads X-Accel-Buffering).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(Response):
    """A stream's answer: its headers at once, then each event as the hub gives it, until the
    client goes away (watched all along, not only when a write fails) or the hub ends it.
    The subscriber is freed however it ends."""

    media_type = MEDIA_TYPE

    def __init__(
        self, hub: EventHub, subscriber: Subscriber | None, last_event_id: str | None
    ) -> None:
        # No body and no Content-Length: the answer is as long as the stream.
        self.status_code = 200
        self.background = None
        self.init_headers(STREAM_HEADERS)
        self.hub = hub
        self.subscriber = subscriber
        self.last_event_id = last_event_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        subscriber = self.subscriber
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if subscriber is None:  # HEAD: the headers are the answer
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            writer = asyncio.ensure_future(self._write(subscriber, send))
            watcher = asyncio.ensure_future(_client_gone(receive))
            try:
                await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (writer, watcher):
                    task.cancel()
                    with suppress(asyncio.CancelledError, OSError):
                        await task
        finally:
            if subscriber is not None:
                self.hub.unsubscribe(subscriber)

    async def _write(self, subscriber: Subscriber, send: Send) -> None:
        stream = self.hub.stream(subscriber, self.last_event_id)
        try:
            async for chunk in stream:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            # The hub ended it (a reset for falling behind): the answer is complete.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await stream.aclose()


async def _client_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_EXAMPLE = (
    'id: 41\nevent: source\ndata: {"source":"finqware:bt-main","status":"ok","error":null,'
    '"fetched_at":"2026-12-01T09:30:00Z"}\n\n'
    'id: 42\nevent: positions\ndata: {"source":"finsync","version":"7f3a","fetched_at":'
    '"2026-12-01T09:30:02Z","changed_accounts":["finsync:101"],"totals_delta":{"ARS":"-1520.50"}}'
    "\n\n: keep-alive\n\n"
)

_STRING = {"type": "string"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_MONEY = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}


def _event(kind: str, description: str, data: dict[str, Any]) -> dict[str, Any]:
    """One event type: its `event` name and the JSON its `data` line holds."""
    return {
        "title": kind,
        "description": description,
        "properties": {
            "event": {"const": kind},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {
                    "type": "object",
                    "required": list(data),
                    "properties": data,
                },
            },
        },
    }


# OpenAPI 3.1 reads a text/event-stream `schema` as the shape of each event (id, event, data).
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "The stream's position in history: send it back as "
            "`Last-Event-ID` to be replayed what happened after it.",
        },
        "event": {"type": "string", "enum": ["positions", "source", "consent", "reset"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "oneOf": [
        _event(
            "positions",
            "A connection's figures changed.",
            {
                "source": _STRING,
                "version": _STRING,
                "fetched_at": {**_NULLABLE_STRING, "format": "date-time"},
                "changed_accounts": {"type": "array", "items": _STRING},
                "totals_delta": {"type": "object", "additionalProperties": _MONEY},
            },
        ),
        _event(
            "source",
            "A connection's status or error changed.",
            {
                "source": _STRING,
                "status": {"type": "string", "enum": ["ok", "stale", "unavailable"]},
                "error": {
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {"code": _STRING, "message": _STRING},
                        },
                    ]
                },
                "fetched_at": {**_NULLABLE_STRING, "format": "date-time"},
            },
        ),
        _event(
            "consent",
            "A bank consent is in its last 14 days (or expired).",
            {
                "source": _STRING,
                "expires_at": {"type": "string", "format": "date-time"},
                "expired": {"type": "boolean"},
                "days_left": {"type": "integer", "minimum": 0},
                "message": _STRING,
            },
        ),
        _event(
            "reset",
            "What was missed cannot be told: refetch everything.",
            {
                "reason": {
                    "type": "string",
                    "enum": [
                        "unknown_id",
                        "before_retention",
                        "too_far_behind",
                        "history_off",
                        "history_unavailable",
                        "slow_consumer",
                    ],
                }
            },
        ),
    ],
}

_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The stream: never ends on its own (but after a `reset` for a slow "
        "reader). `Cache-Control: no-cache` and `X-Accel-Buffering: no`; never compressed. "
        "Each event is `id`, `event` (its type) and one `data` line of JSON:\n\n"
        "- `positions`: a connection's figures changed: `source`, `version`, `fetched_at`, "
        "`changed_accounts` (account ids), `totals_delta` (currency → exact decimal string).\n"
        "- `source`: a connection's status or error changed: `source`, `status` (`ok`, "
        "`stale`, `unavailable`), `error` (`{code, message}` as in `sources`, or null), "
        "`fetched_at`. May repeat a state already sent (after a reconnect).\n"
        "- `consent`: a bank consent in its last 14 days, at the start of each stream and "
        "once a day: `source`, `expires_at`, `expired`, `days_left`, `message`.\n"
        "- `reset`: what was missed cannot be told (`reason`: `unknown_id`, "
        "`before_retention`, `too_far_behind`, `history_off`, `history_unavailable`, or "
        "`slow_consumer`, after "
        "which the stream ends): refetch everything.\n\n"
        "An `id` is the stream's position in history: send the last one received as "
        "`Last-Event-ID` to be replayed what happened since. A comment line (`: keep-alive`) "
        "comes when nothing else did for 15 s.",
        "content": {MEDIA_TYPE: {"schema": _EVENT_SCHEMA, "example": _EXAMPLE}},
        "headers": {
            "Cache-Control": {"description": "`no-cache`.", "schema": {"type": "string"}},
            "X-Accel-Buffering": {
                "description": "`no`: proxies pass each event on at once.",
                "schema": {"type": "string"},
            },
        },
    },
    **problem_responses(
        401,
        403,
        422,
        429,
        503,
        descriptions={
            429: "The caller has `TESORO_CALLER_MAX_IN_FLIGHT` requests in flight as the "
            "stream opens (an open stream holds no place once its headers are sent).",
            503: "This replica holds `TESORO_EVENTS_MAX_SUBSCRIBERS` streams already "
            "(`/problems/too-many-streams`, with `Retry-After`), or it is starting or stopping.",
        },
    ),
}


@router.get(
    "/events",
    name="stream_events",
    summary="Changes as they happen (server-sent events)",
    description="A `text/event-stream` telling a frontend when to refetch instead of polling: "
    "`positions` when a connection's figures change, `source` when its status or error "
    "changes, `consent` while a bank consent is in its last 14 days, `reset` when what was "
    "missed cannot be replayed. Reconnecting with `Last-Event-ID` replays from history what "
    "happened since that id. With Redis, a change seen by any replica reaches the streams "
    "of every replica, once. `HEAD` answers the headers at once.",
    response_class=EventStream,
    status_code=200,
    response_description="The stream of events.",
    responses=_STREAM_RESPONSE,
)
async def stream_events(
    request: Request,
    caller: Reader,
    hub: EventsDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="The `id` of the last event received: what happened since is "
            "replayed from history, or a `reset` event says to refetch everything.",
        ),
    ] = None,
) -> EventStream:
    if request.scope.get(HEAD_REQUEST):
        hub.check_room()
        return EventStream(hub, None, last_event_id)
    return EventStream(hub, hub.subscribe(), last_event_id)
