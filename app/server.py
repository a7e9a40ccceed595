"""The HTTP server tesoro runs: uvicorn's httptools protocol with limits it lacks.

uvicorn's httptools protocol has no limit on the size of request headers and no time limit
for them to arrive: twelve connections each sending an unfinished 32 MiB header held
hundreds of megabytes, a complete 64 MiB header stalled the event loop for seconds, and a
connection trickling headers was never closed. This protocol counts the bytes of each
request's head (request line and headers) as they arrive, before the parser buffers them,
answers 431 past `max_header_bytes`, and closes a connection whose head has not arrived
within `header_timeout_seconds`. Chosen over switching to h11 (which has a size limit but
serves about half the requests per second on small answers) and over another server. A
request that cannot be parsed at all (a bad request line, an invalid header) is answered
with a 400 problem, where uvicorn's own answer is text/plain.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEADER_BYTES = 16 * 1024
# The one route whose answer lasts until the client leaves (server-sent events).
EVENT_STREAM_PATH = "/events"
HEADER_TIMEOUT_SECONDS = 10.0
_END_OF_HEAD = b"\r\n\r\n"
# How long what a client still sends after a refused head is read and dropped.
_LINGER_SECONDS = 2.0


def _problem_answer(status: int, slug: str, title: str, detail: str) -> bytes:
    """A whole HTTP answer carrying a problem, for refusals the server makes before any app
    runs (the connection closes after it)."""
    body = json.dumps(
        {"type": f"/problems/{slug}", "title": title, "status": status, "detail": detail}
    ).encode()
    return (
        f"HTTP/1.1 {status} {title}\r\n".encode()
        + b"content-type: application/problem+json\r\n"
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


def _answer_431(max_header_bytes: int) -> bytes:
    return _problem_answer(
        431,
        "request-header-fields-too-large",
        "Request Header Fields Too Large",
        f"the request's headers are larger than {max_header_bytes} bytes",
    )


# uvicorn answers a request it cannot parse (a bad request line, an invalid header) itself,
# in text/plain; tesoro's is a problem like every other error.
_ANSWER_400 = _problem_answer(
    400, "bad-request", "Bad Request", "the request is not valid HTTP/1.1 and cannot be read"
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """httptools with a header size limit (431) and a header-read time limit (close)."""

    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS
    # Told of each refused head (metrics count it: the app never sees the request).
    on_refused: Callable[[], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._awaiting_head = True
        self._tail = b""
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False

    # --- the time limit ---------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_seconds, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._awaiting_head and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        # An event stream (GET /events) never completes by itself, and uvicorn waits for every
        # answer in flight at a graceful shutdown: the stream is closed instead, between two
        # events (each is one write), and its client reconnects with Last-Event-ID (to
        # another replica). Every other answer in flight is still completed.
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_complete
            and cycle.scope.get("path") == EVENT_STREAM_PATH
        ):
            self.transport.close()
            return
        super().shutdown()

    def on_response_complete(self) -> None:
        # The next request's head starts now, with its own size (unless it was pipelined and
        # has already arrived). Its time is counted from its first bytes, below; until they
        # come, uvicorn's keep-alive time-out closes an idle connection.
        if not self.pipeline:
            self._head_bytes, self._awaiting_head, self._tail = 0, True, b""
        super().on_response_complete()

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's own text/plain answer (`msg` is its fixed "Invalid HTTP request received.").
        self.transport.write(_ANSWER_400)
        self.transport.close()

    # --- the size limit ---------------------------------------------------------------------

    def _refuse_head(self) -> None:
        """Answer 431, then close gently: our side ends at once, what the client still sends
        is dropped for a moment (closing with unread data would reset the connection and
        could lose the answer before the client reads it), then the connection closes."""
        self._disarm_head_timer()
        self._awaiting_head, self._refused = False, True
        if self.on_refused is not None:
            self.on_refused()
        self.transport.write(_answer_431(self.max_header_bytes))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # what follows a refused head is read and dropped until we close
        if self._awaiting_head:
            # Count up to the end of the head when it is in this chunk (maybe across chunks).
            window = self._tail + data
            end = window.find(_END_OF_HEAD)
            counted = len(data) if end < 0 else max(0, end + len(_END_OF_HEAD) - len(self._tail))
            self._head_bytes += counted
            self._tail = window[-(len(_END_OF_HEAD) - 1) :]
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()
                return
            if end < 0 and self._head_timer is None:
                # A head in pieces: it has header_timeout_seconds to complete. A head that
                # comes whole (nearly always) never sets a timer.
                self._arm_head_timer()
        super().data_received(data)


def limited_protocol(
    *,
    max_header_bytes: int = MAX_HEADER_BYTES,
    header_timeout_seconds: float = HEADER_TIMEOUT_SECONDS,
    on_refused: Callable[[], None] | None = None,
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class with these limits (uvicorn builds one instance per connection);
    `on_refused` is called for every head refused with a 431."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {
            "max_header_bytes": max_header_bytes,
            "header_timeout_seconds": header_timeout_seconds,
            # staticmethod: a plain function stored on the class would become a method.
            "on_refused": None if on_refused is None else staticmethod(on_refused),
        },
    )
