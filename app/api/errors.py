"""RFC 9457 problem+json: the one error body of tesoro, and the handlers that produce it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.domain.directory import (
    CreateNotConfirmedError,
    DuplicateCounterpartyError,
    SourceNotConfiguredError,
    UnknownCounterpartyError,
)
from app.domain.models import SourceErrorCode, SourceInfo
from app.domain.treasury import AllSourcesUnavailableError
from app.upstreams.errors import UpstreamError, UpstreamTimeoutError

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://tesoro.dev/problems/"


class FieldError(BaseModel):
    """One invalid input."""

    location: list[str | int] = Field(description='Where: e.g. `["query", "page_size"]`.')
    message: str = Field(description="What is wrong with it, for a human.")
    type: str = Field(description="Machine-readable kind of error, e.g. `greater_than_equal`.")


class Problem(BaseModel):
    """An RFC 9457 problem detail: the body of every error, as `application/problem+json`.

    Members that do not apply to a problem are left out, never sent as null.
    """

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="URI naming the kind of problem.", examples=[PROBLEM_TYPE_BASE + "not-found"]
    )
    title: str = Field(description="Short summary of the kind of problem.", examples=["Not Found"])
    status: int = Field(ge=400, le=599, description="The HTTP status code.", examples=[404])
    detail: str = Field(description="What went wrong this time, for a human.")
    instance: str | SkipJsonSchema[None] = Field(default=None, description="The request path.")
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        default=None, description="Validation errors (422 only)."
    )
    existing_id: str | SkipJsonSchema[None] = Field(
        default=None, description="409 on create: the id of the counterparty with that name."
    )
    sources: list[SourceInfo] | SkipJsonSchema[None] = Field(
        default=None, description="503 when every upstream failed: each connection's error."
    )
    code: SourceErrorCode | SkipJsonSchema[None] = Field(
        default=None, description="Upstream failures (502, 503, 504): the stable reason code."
    )


class ProblemError(Exception):
    """Raised anywhere in the API layer to answer with a problem."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or _slug(status)
        self.title = title or _title(status)
        self.headers = headers
        self.extra = extra


# RFC 9110's names, which Python only uses from 3.13 on: a problem's `type` and `title`
# must not change with the interpreter.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _title(status: int) -> str:
    return _TITLES.get(status) or HTTPStatus(status).phrase


def _slug(status: int) -> str:
    return _title(status).lower().replace(" ", "-")


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE_BASE + (kind or _slug(status)),
        title=title or _title(status),
        status=status,
        detail=detail,
        instance=request.url.path,
        **extra,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        exc.detail,
        kind=exc.kind,
        title=exc.title,
        headers=exc.headers,
        **exc.extra,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"there is nothing at {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(
            request, 405, detail, headers={**(exc.headers or {}), "Allow": _allowed(request)}
        )
    return problem_response(request, exc.status_code, detail, headers=exc.headers)


def _allowed(request: Request) -> str:
    """Every method the path serves: the router's 405 names only the first matching route's."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE and route.methods:
            methods |= route.methods
    return ", ".join(sorted(methods))


def _location(loc: tuple[Any, ...]) -> list[str | int]:
    return [part if isinstance(part, int) else str(part) for part in loc]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(
            location=_location(tuple(err.get("loc", ()))),
            message=str(err.get("msg", "")),
            type=str(err.get("type", "")),
        )
        for err in exc.errors()
    ]
    # Never echo the input back: it may be a secret pasted into the wrong field.
    summary = "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors[:5])
    return problem_response(
        request,
        422,
        f"the request is not valid: {summary}",
        kind="validation-error",
        title="Unprocessable Content",
        errors=errors,
    )


async def _all_unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AllSourcesUnavailableError)
    summary = ", ".join(f"{s.source}: {s.error.code}" for s in exc.sources if s.error)
    return problem_response(
        request,
        503,
        f"no upstream answered and nothing is cached ({summary})",
        kind="upstreams-unavailable",
        sources=exc.sources,
        headers={"Retry-After": "30"},
    )


async def _unknown_counterparty(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, 404, f"no counterparty has the id {str(exc)[:200]!r}")


async def _duplicate(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DuplicateCounterpartyError)
    return problem_response(
        request,
        409,
        f"a counterparty with this name already exists: {exc.existing_id}",
        kind="duplicate-counterparty",
        existing_id=exc.existing_id,
    )


async def _not_confirmed(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        request,
        503,
        "FinSync did not answer the create, and a check shows it was not created; "
        "it is safe to try again",
        kind="create-not-confirmed",
        headers={"Retry-After": "5"},
    )


async def _not_configured(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(request, 503, str(exc), kind="source-not-configured")


async def _upstream(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, UpstreamError)
    if isinstance(exc, UpstreamTimeoutError) or exc.code == "outcome_unknown":
        status = 504
    elif exc.transient:
        status = 503
    else:
        status = 502
    return problem_response(
        request,
        status,
        f"{exc.upstream}: {exc.message}",
        kind="upstream-" + exc.code.replace("_", "-"),
        code=exc.code,
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "an unexpected error occurred; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(AllSourcesUnavailableError, _all_unavailable)
    app.add_exception_handler(UnknownCounterpartyError, _unknown_counterparty)
    app.add_exception_handler(DuplicateCounterpartyError, _duplicate)
    app.add_exception_handler(CreateNotConfirmedError, _not_confirmed)
    app.add_exception_handler(SourceNotConfiguredError, _not_configured)
    app.add_exception_handler(UpstreamError, _upstream)
    app.add_exception_handler(Exception, _unexpected)


# What each problem status means on tesoro's routes; a route may say it more precisely.
_PROBLEM_DESCRIPTIONS = {
    400: "The body could not be read at all (e.g. it is not UTF-8 text).",
    401: "No API key was sent, or it is not valid (see `WWW-Authenticate`).",
    403: "The API key lacks the scope this operation needs.",
    404: "No counterparty has this id (an unknown prefix or a malformed id included).",
    409: "A counterparty with this name already exists; `existing_id` names it.",
    413: "The request body is larger than the service accepts (64 KiB).",
    422: "The request is not valid; `errors` lists every invalid input.",
    502: "FinSync refused the call or answered something unusable; `code` says why.",
    503: "No upstream answered and nothing is cached; `sources` lists each connection's error.",
    504: "FinSync did not answer in time; `code` says why.",
}
_PROBLEM_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'The authentication scheme: `Bearer realm="tesoro"`.',
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before trying again, when the service knows.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` declaration of problem answers for a route, for the OpenAPI spec.

    FastAPI puts a response `model` under the route's media type (application/json);
    `app.api.openapi` moves it under `application/problem+json`, the one declared here.
    """
    descriptions = descriptions or {}
    return {
        status: {
            "model": Problem,
            "description": descriptions.get(status)
            or _PROBLEM_DESCRIPTIONS.get(status)
            or _title(status),
            "content": {PROBLEM_MEDIA_TYPE: {}},
            **({"headers": _PROBLEM_HEADERS[status]} if status in _PROBLEM_HEADERS else {}),
        }
        for status in statuses
    }
