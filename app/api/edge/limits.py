"""Bounded work per request and per caller.

A request body is at most `MAX_BODY_BYTES` (413 past it, by Content-Length or while it
streams). At most `TESORO_CALLER_MAX_IN_FLIGHT` requests in flight for one
caller (429 past it), and a read whose caller went away is stopped and its place freed.

A caller is one API key (by its configured name). Without authentication, and for a request
whose key is missing or not valid, it is the client's address as the server reports it
(behind a trusted proxy, the address the proxy forwarded). The probes and the metrics
(`/healthz`, `/readyz`, `/metrics`) are never counted: an orchestrator must always reach
them, and they cost nothing.

A refusal is answered after a short pause (`REFUSAL_PAUSE_SECONDS`), so that a caller that
ignores `Retry-After` cannot spend the process's CPU on refusals either; the pause holds no
place. A place is given back when the answer is complete, or as soon as the client of a
`GET` (or `HEAD`) goes away: the read is then cancelled, so nothing goes on building or
waiting for an answer nobody reads (builds other callers still wait for go on, see
`app.api.answers`). A write is never cancelled (it may be landing upstream): it keeps its
place until it ends, which the upstream deadlines bound. An event stream holds its place only
until its headers are sent (streams are bounded per process, `TESORO_EVENTS_MAX_SUBSCRIBERS`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import Caller, admitted
from app.api.edge.base import CLIENT_GONE, header
from app.api.errors import BodyTooLargeError
from app.settings import Settings

MAX_BODY_BYTES = 64 * 1024
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# A refusal is sent after this pause: a caller that ignores Retry-After and asks again at
# once, on many connections, then gets one refusal per connection per pause, not as many as
# the process can write (which took the CPU from every other caller).
REFUSAL_PAUSE_SECONDS = 0.5
# Reads: safe to cancel when nobody waits for the answer any more.
_CANCELLABLE = frozenset({"GET", "HEAD"})
# A read is watched for its client going away once it has taken this long: most answers are
# sent well before, and watching costs a task (tens of microseconds) on every request.
WATCH_AFTER_SECONDS = 0.05


def declared_too_large(scope: Scope, max_bytes: int = MAX_BODY_BYTES) -> bool:
    """Whether a Content-Length says the body is over `max_bytes` (or is not a number)."""
    return any(
        name == b"content-length" and (not value.isdigit() or int(value) > max_bytes)
        for name, value in scope["headers"]
    )


def counting(receive: Receive, max_bytes: int = MAX_BODY_BYTES) -> Receive:
    """A `receive` that raises BodyTooLargeError once the body passes `max_bytes`."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLargeError(max_bytes)
        return message

    return counting_receive


def caller_of(settings: Settings, scope: Scope, authorization: str | None = None) -> str:
    """Whom a request counts against: `key:<name>`, or `address:<client address>`
    (`authorization`: the header's value when already read)."""
    if not settings.auth_required:
        return counted_as(settings, scope, None)
    if authorization is None:
        authorization = header(scope, "authorization")
    return counted_as(settings, scope, admitted(settings, authorization))


def counted_as(settings: Settings, scope: Scope, caller: Caller | None) -> str:
    """`caller_of` for a request whose caller is known already (`auth.admitted`: None when
    its key is missing or not valid), so the key is not hashed again."""
    if settings.auth_required and caller is not None:
        return f"key:{caller.name}"
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"


def is_limited(scope: Scope) -> bool:
    """Whether the request counts against its caller's limit."""
    return scope["path"] not in UNLIMITED_PATHS


def is_cancellable(scope: Scope) -> bool:
    """Whether the request is a read, stopped when its client goes away."""
    return scope["method"] in _CANCELLABLE


class InFlight:
    """Each caller's requests in flight, at most `max_in_flight` each."""

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self.counts: dict[str, int] = {}

    def take(self, caller: str) -> Callable[[], None] | None:
        """A place for one more request of `caller`, as the function that gives it back
        (once, however often it is called); None when the caller has none left."""
        count = self.counts.get(caller, 0)
        if count >= self.max_in_flight:
            return None
        self.counts[caller] = count + 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                left = self.counts[caller] - 1
                if left:
                    self.counts[caller] = left
                else:
                    del self.counts[caller]

        return release


async def cancelled_when_gone(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, on_gone: Callable[[], None]
) -> None:
    """Runs a read; if the client goes away before its answer is complete, `on_gone()` is
    called and the read is cancelled (the server has nobody to answer). Watched from
    WATCH_AFTER_SECONDS on: a quicker answer is complete before it would matter."""
    first = await receive()
    if first["type"] == "http.disconnect":
        scope[CLIENT_GONE] = True
        on_gone()
        return
    if first.get("more_body", False):
        # A read with a body still coming (rare): not watched, the app reads it itself.
        await app(scope, _replaying(first, receive), send)
        return
    task = asyncio.current_task()
    assert task is not None
    gone = asyncio.Event()
    delivered = complete = cancelled = False

    async def app_receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return first
        await gone.wait()
        return {"type": "http.disconnect"}

    async def tracked_send(message: Message) -> None:
        nonlocal complete
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete = True
        await send(message)

    async def watch() -> None:
        nonlocal cancelled
        # The server's next message is http.disconnect: the client left, or the answer is
        # complete (then nothing is cancelled).
        await receive()
        gone.set()
        if not complete:
            scope[CLIENT_GONE] = True
            on_gone()
            cancelled = True
            task.cancel()

    watchers: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()
    timer = loop.call_later(WATCH_AFTER_SECONDS, lambda: watchers.append(loop.create_task(watch())))
    try:
        await app(scope, app_receive, tracked_send)
    except asyncio.CancelledError:
        if cancelled and task.uncancel() == 0:
            return  # the client left: there is nobody to answer
        raise
    else:
        if cancelled:
            task.uncancel()
    finally:
        timer.cancel()
        for watcher in watchers:
            watcher.cancel()


def _replaying(first: Message, receive: Receive) -> Receive:
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await receive()

    return again
