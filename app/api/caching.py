"""HTTP caching of aggregated answers: ETag, If-None-Match → 304, Cache-Control max-age, and
which kept bytes (`app.api.answers`) a request is sent."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel
from starlette.datastructures import Headers

from app.api.answers import AnswerCache, KeptAnswer, Question, Recall, etag_of, key_of
from app.api.edge.compression import MIN_COMPRESSED_BYTES, accepted_encoding
from app.services.treasury import Connection, Gathered, Treasury, still_true


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _validators(etag: str, max_age_seconds: int) -> dict[str, str]:
    """The headers of a cached answer and of its 304 alike."""
    return {
        "ETag": etag,
        "Cache-Control": f"private, max-age={max(0, max_age_seconds)}",
        "Vary": "Authorization",
    }


def _matches(request: Request, etag: str) -> bool:
    """Whether the request's If-None-Match names `etag` (compared weakly) or is `*`."""
    return _matches_value(request.headers.get("if-none-match"), etag)


def _matches_value(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or etag.removeprefix("W/") in candidates


_VALIDATOR_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "Validator of the data state and the question (weak: a compressed "
        "form of the same answer carries it too); send it back in `If-None-Match`.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "`private, max-age=<seconds until the data expires>`.",
        "schema": {"type": "string"},
    },
}

# The OpenAPI side of `cached_json`: declared on every route that answers with it.
CACHED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": _VALIDATOR_HEADERS},
    304: {
        "description": "Not Modified: `If-None-Match` matched the current `ETag`; no body.",
        "headers": _VALIDATOR_HEADERS,
    },
}
CONDITIONAL_REQUEST: dict[str, Any] = {
    "parameters": [
        {
            "name": "if-none-match",
            "in": "header",
            "required": False,
            "description": "An `ETag` from an earlier answer: a 304 without a body while "
            "the data has not changed.",
            "schema": {"type": "string"},
        }
    ]
}


# Set in the ASGI scope by the fast path at the edge when it gathered a request's data state
# but could not answer it: what the route's gather is then (`gathered_for`), so the request
# gathers once (its cache reads and refreshes counted once) whoever answers it.
GATHERED_AT_THE_EDGE = "tesoro.gathered"


async def gathered_for(
    request: Request, treasury: Treasury, connections: Sequence[Connection], *, refresh: bool
) -> Gathered:
    """What a route's connections give for this request: what the edge gathered for it
    already (it gathers only what `gathering_again` does: these connections, no refetch), or
    a new gather. A gather that failed at the edge fails here the same way."""
    held: Gathered | Exception | None = request.scope.pop(GATHERED_AT_THE_EDGE, None)
    if held is None or refresh:
        return await treasury.gather(refresh=refresh, connections=connections)
    if isinstance(held, Exception):
        raise held
    return held


def gathering_again(
    treasury: Treasury, connections: Sequence[Connection]
) -> Callable[[], Gathered | Awaitable[Gathered] | None]:
    """How to gather these connections again as a route does (no refetch), for the fast path
    at the edge: what the last gather gave while nothing it depends on changed
    (`Treasury.unchanged`, no connection asked), else a gather; None when a connection
    would wait on a load (FastAPI then waits)."""
    keys = tuple(connection.key for connection in connections)

    def again() -> Gathered | Awaitable[Gathered] | None:
        unchanged = treasury.unchanged(keys)
        if unchanged is not None:
            return unchanged
        if not all(connection.answers_at_once(refresh=False) for connection in connections):
            return None
        return treasury.gather(connections=connections)

    return again


@dataclass(frozen=True, slots=True)
class _Sendable:
    """What `kept_response` sends: a 304 (`kept` None) or the kept bytes `body` (compressed
    as `encoding` says, when it says one)."""

    etag: str
    max_age_seconds: int
    kept: KeptAnswer | None = None
    body: bytes = b""
    encoding: str | None = None


def _sendable(
    if_none_match: str | None,
    accept_encoding: str,
    answers: AnswerCache,
    question: Question,
    gathered: Gathered,
) -> _Sendable | None:
    """The decision of `kept_response`, for both of its forms."""
    kept = answers.kept(key_of(question, gathered.state))
    # A kept answer's ETag is its key's, worked out once when it was built.
    etag = etag_of(question, gathered.state) if kept is None else kept.etag
    if _matches_value(if_none_match, etag):
        return _Sendable(etag, gathered.max_age_seconds)
    if kept is None:
        return None
    encoding = accepted_encoding(accept_encoding)
    if encoding is None or len(kept.body) < MIN_COMPRESSED_BYTES:
        return _Sendable(etag, gathered.max_age_seconds, kept, kept.body)
    encoded = kept.encoded.get(encoding)
    if encoded is None:
        return None
    return _Sendable(etag, gathered.max_age_seconds, kept, encoded, encoding)


def kept_response(
    request: Request, answers: AnswerCache, question: Question, gathered: Gathered
) -> Response | None:
    """The answer for the current data state when it can be sent at once: a 304 for a
    matching If-None-Match, or the kept bytes in the encoding the caller accepts when they
    are compressed already; None otherwise. FastAPI's answers and the fast path at the edge
    (`kept_raw`, the same answer as the edge sends it) both answer through here."""
    headers = request.headers
    sendable = _sendable(
        headers.get("if-none-match"),
        headers.get("accept-encoding", ""),
        answers,
        question,
        gathered,
    )
    if sendable is None:
        return None
    validators = _validators(sendable.etag, sendable.max_age_seconds)
    if sendable.kept is None:
        return Response(status_code=304, headers=validators)
    if sendable.encoding is not None:
        validators["Content-Encoding"] = sendable.encoding
    return Response(sendable.body, media_type=sendable.kept.media_type, headers=validators)


# What the edge's encoding step makes of `_validators`' Vary (`edge.compression.encoded`).
_VARY = (b"vary", b"Authorization, Accept-Encoding")


def kept_raw(
    headers: Headers, answers: AnswerCache, question: Question, gathered: Gathered
) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """`kept_response` as the edge sends it (status, raw headers, body), built directly: the
    headers Starlette's `Response` writes for it, in its order, after the edge's encoding
    step (which finds a kept answer encoded already, or too small to encode, and only moves
    `Vary` last with `Accept-Encoding` added). The request id and CORS are the edge's."""
    sendable = _sendable(
        headers.get("if-none-match"),
        headers.get("accept-encoding", ""),
        answers,
        question,
        gathered,
    )
    if sendable is None:
        return None
    raw = [
        (b"etag", sendable.etag.encode("latin-1")),
        (b"cache-control", f"private, max-age={max(0, sendable.max_age_seconds)}".encode()),
    ]
    kept = sendable.kept
    if kept is None:
        raw.append(_VARY)
        return 304, raw, b""
    if sendable.encoding is not None:
        raw.append((b"content-encoding", sendable.encoding.encode("latin-1")))
    media_type = kept.media_type
    if media_type.startswith("text/") and "charset=" not in media_type.lower():
        media_type += "; charset=utf-8"
    raw += [
        (b"content-length", str(len(sendable.body)).encode()),
        (b"content-type", media_type.encode("latin-1")),
        _VARY,
    ]
    return 200, raw, sendable.body


async def answer_json(
    request: Request,
    answers: AnswerCache,
    question: Question,
    build: Callable[[], BaseModel],
    gathered: Gathered,
    *,
    refresh: bool = False,
    again: Callable[[], Gathered | Awaitable[Gathered] | None] | None = None,
) -> Response:
    """An aggregated answer: the bytes kept for its data state and question (built now when
    they are not), compressed whole as the caller accepts (zstd or gzip); a matching
    If-None-Match gets a bodiless 304 without building anything.

    While the answer for a new data state builds, the question's previous answer is sent in
    its place when its bytes are still true (`still_true`: what changed since is a connection
    it already shows `stale` or `unavailable`), with its own ETag and `max-age=0`; never to a
    caller that asked for a refetch (`Cache-Control: no-cache`).

    With `again` (`gathering_again`), the answer for the current data state is remembered
    for this request's raw query: the fast path at the edge may then send the same request
    its kept bytes. This is the one place that decides what the edge may answer."""
    state = gathered.state
    answered = kept_response(request, answers, question, gathered)
    if answered is not None:
        _remember(request, answers, question, again, refresh)
        return answered
    headers = _validators(etag_of(question, state), gathered.max_age_seconds)
    kept = answers.kept(key_of(question, state))
    if kept is None and not refresh:
        previous = answers.previous(question)
        if previous is not None and still_true(previous.state, state):
            answers.build_behind(question, state, build)
            return await previous_json(request, answers, previous)
    if kept is None:
        kept = await answers.get(question, state, build)
    body = await _representation(request, answers, kept, headers)
    _remember(request, answers, question, again, refresh)
    return Response(body, media_type=kept.media_type, headers=headers)


def _remember(
    request: Request,
    answers: AnswerCache,
    question: Question,
    again: Callable[[], Gathered | Awaitable[Gathered] | None] | None,
    refresh: bool,
) -> None:
    # A refetch asked for is FastAPI's to answer every time; so is a question without `again`.
    if again is not None and not refresh:
        recall = Recall(question, request.scope.get("route"), again)
        answers.remember(request.scope["path"], request.scope["query_string"], recall)


async def previous_json(request: Request, answers: AnswerCache, previous: KeptAnswer) -> Response:
    """A previous answer served while the next one builds: its own ETag (its data state),
    `max-age=0` so the caller asks again; a matching If-None-Match gets a 304."""
    headers = _validators(previous.etag, 0)
    if _matches(request, previous.etag):
        return Response(status_code=304, headers=headers)
    body = await _representation(request, answers, previous, headers)
    return Response(body, media_type=previous.media_type, headers=headers)


async def _representation(
    request: Request, answers: AnswerCache, kept: KeptAnswer, headers: dict[str, str]
) -> bytes:
    """The kept body, or its compressed form for the encoding the caller accepts (then named
    in `headers`)."""
    encoding = accepted_encoding(request.headers.get("accept-encoding", ""))
    if encoding is None or len(kept.body) < MIN_COMPRESSED_BYTES:
        return kept.body
    # The Compression middleware leaves an encoded body as it is (and adds the Vary).
    headers["Content-Encoding"] = encoding
    return kept.encoded.get(encoding) or await answers.encoded(kept, encoding)


def cached_json(request: Request, model: BaseModel, *, max_age_seconds: int) -> Response:
    """The model as JSON with validators (the body's digest); a matching If-None-Match gets
    a bodiless 304."""
    body = model.model_dump_json().encode()
    headers = _validators(_etag(body), max_age_seconds)
    if _matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
