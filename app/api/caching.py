"""HTTP caching of aggregated answers: ETag, If-None-Match → 304, Cache-Control max-age, and
which kept bytes (`app.api.answers`) a request is sent."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from app.api.answers import AnswerCache, KeptAnswer, Question, etag_of, key_of
from app.api.middleware import MIN_COMPRESSED_BYTES, accepted_encoding
from app.services.treasury import Gathered, still_true


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
    if_none_match = request.headers.get("if-none-match")
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


async def answer_json(
    request: Request,
    answers: AnswerCache,
    question: Question,
    build: Callable[[], BaseModel],
    gathered: Gathered,
    *,
    refresh: bool = False,
) -> Response:
    """An aggregated answer: the bytes kept for its data state and question (built now when
    they are not), compressed whole as the caller accepts (zstd or gzip); a matching
    If-None-Match gets a bodiless 304 without building anything.

    While the answer for a new data state builds, the question's previous answer is sent in
    its place when its bytes are still true (`still_true`: what changed since is a connection
    it already shows `stale` or `unavailable`), with its own ETag and `max-age=0`; never to a
    caller that asked for a refetch (`Cache-Control: no-cache`)."""
    state = gathered.state
    headers = _validators(etag_of(question, state), gathered.max_age_seconds)
    if _matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    kept = answers.kept(key_of(question, state))
    if kept is None and not refresh:
        previous = answers.previous(question)
        if previous is not None and still_true(previous.state, state):
            answers.build_behind(question, state, build)
            return await previous_json(request, answers, previous)
    if kept is None:
        kept = await answers.get(question, state, build)
    body = await _representation(request, answers, kept, headers)
    return Response(body, media_type=kept.media_type, headers=headers)


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
