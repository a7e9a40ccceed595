"""HTTP caching of aggregated answers: ETag, If-None-Match → 304, Cache-Control max-age."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel

from app.api.answers import AnswerCache, Question, etag_of, splice, splice_encoded
from app.api.edge.compression import MIN_COMPRESSED_BYTES, accepted_encoding
from app.services.treasury import Gathered


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


# What changes every second without the data changing stays out of the validator.
_VOLATILE: dict[str, Any] = {"generated_at": True, "sources": {"__all__": {"age_seconds"}}}


_VALIDATOR_HEADERS: dict[str, Any] = {
    "ETag": {
        "description": "Validator of the data and the question (not of `generated_at` or "
        "`age_seconds`, so it is weak on the aggregated lists); send it back in "
        "`If-None-Match`.",
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
) -> Response:
    """An aggregated answer, kept per data state and question, with this request's volatile
    members; compressed (zstd or gzip, as the caller accepts) around a middle compressed once
    per data version; a matching If-None-Match gets a bodiless 304 without building or
    writing."""
    headers = _validators(etag_of(question, gathered.state), gathered.max_age_seconds)
    if _matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    prebuilt = await answers.get(question, gathered.state, build)
    generated_at = datetime.now(UTC)
    encoding = accepted_encoding(request.headers.get("accept-encoding", ""))
    if encoding is not None and len(prebuilt.middle) >= MIN_COMPRESSED_BYTES:
        encoded = await answers.encoded(prebuilt, encoding)
        body = splice_encoded(prebuilt, encoded, encoding, gathered.sources, generated_at)
        # The Compression middleware leaves an encoded body as it is (and adds the Vary).
        headers["Content-Encoding"] = encoding
    else:
        body = splice(prebuilt, gathered.sources, generated_at)
    return Response(body, media_type="application/json", headers=headers)


def cached_json(request: Request, model: BaseModel, *, max_age_seconds: int) -> Response:
    """The model as JSON with validators; a matching If-None-Match gets a bodiless 304."""
    headers = _validators(_etag(model.model_dump_json(exclude=_VOLATILE).encode()), max_age_seconds)
    if _matches(request, headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(
        model.model_dump_json().encode(), media_type="application/json", headers=headers
    )
