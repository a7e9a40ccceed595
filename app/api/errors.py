"""RFC 9457 problem+json: the one error table of tesoro, its one handler, and its OpenAPI.

Every failure maps in `PROBLEMS`, by exception class, to its status, problem type, title,
headers and extra members; the handler finds an exception's entry through its MRO, so a
subclass answers like its closest listed ancestor. The OpenAPI error responses and the
problem types in `docs/problems.md` come from the same table.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

from app.domain.models import SourceErrorCode, SourceInfo
from app.services.directory import (
    CreateNotConfirmedError,
    DuplicateCounterpartyError,
    SourceNotConfiguredError,
    UnknownCounterpartyError,
)
from app.services.events import TooManySubscribersError
from app.services.idempotency import IdempotencyKeyReusedError
from app.services.shared import LockBusyError
from app.services.treasury import AllSourcesUnavailableError
from app.upstreams.errors import (
    ConsentExpiredError,
    TransientUpstreamError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamOutcomeUnknownError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
    transient_codes,
)

logger = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
# Relative to the service that answers: tesoro can stand behind these, and each is described
# in docs/problems.md (the table below is its source).
PROBLEM_TYPE_BASE = "/problems/"
# Errors in a validation problem: enough to fix a request, never a megabyte of them.
MAX_FIELD_ERRORS = 20
_TRANSIENT_CODES: frozenset[str] = transient_codes()


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
        description="URI reference naming the kind of problem, relative to the service "
        "(`/problems/<slug>`); each is described in the service's documentation.",
        examples=[PROBLEM_TYPE_BASE + "not-found"],
    )
    title: str = Field(description="Short summary of the kind of problem.", examples=["Not Found"])
    status: int = Field(ge=400, le=599, description="The HTTP status code.", examples=[404])
    detail: str = Field(description="What went wrong this time, for a human.")
    instance: str | SkipJsonSchema[None] = Field(default=None, description="The request path.")
    errors: list[FieldError] | SkipJsonSchema[None] = Field(
        default=None, description="Validation errors (422 only), at most 20."
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


# --- failures raised by the API layer itself -----------------------------------------------


class NotReadyError(Exception):
    """The service is starting or stopping: its services are not there."""


class UnauthenticatedError(Exception):
    """No API key, or one that is not valid."""


class ForbiddenError(Exception):
    """The API key lacks the scope the operation needs."""


class CallerBusyError(Exception):
    """The caller already has as many requests in flight as it may (429)."""

    retry_after_seconds = 1

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this caller already has {limit} requests in flight; "
            "wait for an answer before sending more"
        )


class BuildsBusyError(Exception):
    """Every build place and every queue place is taken: a new answer cannot be built now
    (503)."""

    retry_after_seconds = 2

    def __init__(self) -> None:
        super().__init__(
            "too many new answers are being built; try again shortly "
            "(answers already built are still served)"
        )


def _retry_after(exc: Exception) -> dict[str, str]:
    assert isinstance(exc, CallerBusyError | BuildsBusyError)
    return {"Retry-After": str(exc.retry_after_seconds)}


class BodyTooLargeError(StarletteHTTPException):
    """The request body is larger than the service accepts.

    An HTTPException so that FastAPI, which turns any other failure while it reads a body
    into a 400, lets it through to the table's handler when a chunked body grows too big.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")

    def __str__(self) -> str:
        return str(self.detail)


# --- the table --------------------------------------------------------------------------------


def _message(exc: Exception) -> str:
    return str(exc)


def _no_extra(exc: Exception) -> dict[str, Any]:
    return {}


def _no_headers(exc: Exception) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class ProblemKind:
    """How one kind of failure answers."""

    status: int
    slug: str
    title: str
    description: str
    detail: Callable[[Exception], str] = _message
    headers: Callable[[Exception], Mapping[str, str]] = _no_headers
    members: Callable[[Exception], dict[str, Any]] = _no_extra
    # OpenAPI headers this kind may send, by name.
    documented_headers: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug


# RFC 9110's names, which Python only uses from 3.13 on: a problem's `title` must not change
# with the interpreter.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def status_title(status: int) -> str:
    return _TITLES.get(status) or HTTPStatus(status).phrase


def _upstream(status: int, slug: str, description: str) -> ProblemKind:
    def detail(exc: Exception) -> str:
        assert isinstance(exc, UpstreamError)
        return f"{exc.upstream}: {exc.message}"

    def members(exc: Exception) -> dict[str, Any]:
        assert isinstance(exc, UpstreamError)
        return {"code": exc.code}

    return ProblemKind(
        status, slug, status_title(status), description, detail=detail, members=members
    )


def _all_unavailable_detail(exc: Exception) -> str:
    assert isinstance(exc, AllSourcesUnavailableError)
    summary = ", ".join(f"{s.source}: {s.error.code}" for s in exc.sources if s.error)
    return f"no upstream answered and nothing is cached ({summary})"


def _all_unavailable_headers(exc: Exception) -> dict[str, str]:
    # Worth trying again only when something transient failed: an expired consent will not
    # heal in 30 seconds.
    assert isinstance(exc, AllSourcesUnavailableError)
    transient = any(s.error and s.error.code in _TRANSIENT_CODES for s in exc.sources)
    return {"Retry-After": "30"} if transient else {}


def _all_unavailable_members(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, AllSourcesUnavailableError)
    return {"sources": exc.sources}


def _unknown_detail(exc: Exception) -> str:
    assert isinstance(exc, UnknownCounterpartyError)
    return f"no counterparty has the id {exc.counterparty_id[:200]!r}"


def _duplicate_detail(exc: Exception) -> str:
    assert isinstance(exc, DuplicateCounterpartyError)
    return f"a counterparty with this name already exists: {exc.existing_id}"


def _duplicate_members(exc: Exception) -> dict[str, Any]:
    assert isinstance(exc, DuplicateCounterpartyError)
    return {"existing_id": exc.existing_id}


def _lock_retry_after(exc: Exception) -> str:
    assert isinstance(exc, LockBusyError)
    return str(max(1, math.ceil(exc.retry_after_seconds)))


_RETRY_AFTER_DOC = {
    "Retry-After": {
        "description": "Seconds to wait before trying again, when trying again can help.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tesoro"'}
_CHALLENGE_DOC = {
    "WWW-Authenticate": {
        "description": 'The authentication scheme: `Bearer realm="tesoro"`.',
        "schema": {"type": "string"},
    }
}

PROBLEMS: dict[type[Exception], ProblemKind] = {
    RequestValidationError: ProblemKind(
        422,
        "validation-error",
        "Unprocessable Content",
        "The request is not valid; `errors` lists the invalid inputs (at most 20).",
    ),
    IdempotencyKeyReusedError: ProblemKind(
        422,
        "idempotency-key-reused",
        "Unprocessable Content",
        "The `Idempotency-Key` was already used with a different body.",
        detail=lambda exc: "this Idempotency-Key was already used with a different body",
    ),
    UnauthenticatedError: ProblemKind(
        401,
        "unauthorized",
        "Unauthorized",
        "No API key was sent, or it is not valid (see `WWW-Authenticate`).",
        headers=lambda exc: _CHALLENGE,
        documented_headers=_CHALLENGE_DOC,
    ),
    ForbiddenError: ProblemKind(
        403, "forbidden", "Forbidden", "The API key lacks the scope this operation needs."
    ),
    UnknownCounterpartyError: ProblemKind(
        404,
        "not-found",
        "Not Found",
        "No counterparty has this id (an unknown prefix or a malformed id included).",
        detail=_unknown_detail,
    ),
    DuplicateCounterpartyError: ProblemKind(
        409,
        "duplicate-counterparty",
        "Conflict",
        "A counterparty with this name already exists; `existing_id` names it.",
        detail=_duplicate_detail,
        members=_duplicate_members,
    ),
    CallerBusyError: ProblemKind(
        429,
        "too-many-requests",
        "Too Many Requests",
        "The caller (its API key) already has `TESORO_CALLER_MAX_IN_FLIGHT` requests in "
        "flight; try again after `Retry-After` seconds, or once an answer arrives.",
        headers=_retry_after,
        documented_headers=_RETRY_AFTER_DOC,
    ),
    BuildsBusyError: ProblemKind(
        503,
        "busy",
        "Service Unavailable",
        "The question needs a new answer built and every build place and queue place is "
        "taken; try again after `Retry-After` seconds.",
        headers=_retry_after,
        documented_headers=_RETRY_AFTER_DOC,
    ),
    BodyTooLargeError: ProblemKind(
        413,
        "content-too-large",
        "Content Too Large",
        "The request body is larger than the service accepts (64 KiB), whether sent with "
        "`Content-Length` or chunked.",
        headers=lambda exc: {"Connection": "close"},
    ),
    AllSourcesUnavailableError: ProblemKind(
        503,
        "upstreams-unavailable",
        "Service Unavailable",
        "No upstream answered and nothing is cached; `sources` lists each connection's error.",
        detail=_all_unavailable_detail,
        headers=_all_unavailable_headers,
        members=_all_unavailable_members,
        documented_headers=_RETRY_AFTER_DOC,
    ),
    CreateNotConfirmedError: ProblemKind(
        503,
        "create-not-confirmed",
        "Service Unavailable",
        "FinSync did not answer the create, and a check shows it was not created: safe to "
        "try again.",
        detail=lambda exc: (
            "FinSync did not answer the create, and a check shows it was not "
            "created; it is safe to try again"
        ),
        headers=lambda exc: {"Retry-After": "5"},
        documented_headers=_RETRY_AFTER_DOC,
    ),
    LockBusyError: ProblemKind(
        503,
        "create-in-progress",
        "Service Unavailable",
        "Another create of the same name, or another request with the same "
        "`Idempotency-Key`, holds its lock (its replica may have stopped): try again after "
        "`Retry-After`, when the lock is free at the latest.",
        headers=lambda exc: {"Retry-After": _lock_retry_after(exc)},
        documented_headers=_RETRY_AFTER_DOC,
    ),
    SourceNotConfiguredError: ProblemKind(
        503,
        "source-not-configured",
        "Service Unavailable",
        "The operation needs an upstream this deployment does not have.",
    ),
    TooManySubscribersError: ProblemKind(
        503,
        "too-many-streams",
        "Service Unavailable",
        "This replica already holds `TESORO_EVENTS_MAX_SUBSCRIBERS` event streams: try "
        "again after `Retry-After` (another replica may have room).",
        headers=lambda exc: {"Retry-After": "10"},
        documented_headers=_RETRY_AFTER_DOC,
    ),
    NotReadyError: ProblemKind(
        503, "not-ready", "Service Unavailable", "The service is starting or stopping."
    ),
    UpstreamError: _upstream(502, "upstream-failed", "An upstream failed; `code` says why."),
    TransientUpstreamError: _upstream(
        503, "upstream-unavailable", "An upstream is unavailable for now; `code` says why."
    ),
    UpstreamTimeoutError: _upstream(504, "upstream-timeout", "An upstream did not answer in time."),
    UpstreamUnavailableError: _upstream(
        503, "upstream-error", "An upstream failed (network, 5xx, a proxy's HTML page)."
    ),
    UpstreamRateLimitedError: _upstream(
        503, "upstream-rate-limited", "An upstream (or the bank behind it) limits the rate."
    ),
    UpstreamUnauthorizedError: _upstream(
        502, "upstream-unauthorized", "An upstream refused tesoro's credentials."
    ),
    ConsentExpiredError: _upstream(
        502, "consent-expired", "A bank consent expired or was revoked: onboard again."
    ),
    UpstreamBadResponseError: _upstream(
        502, "upstream-bad-response", "An upstream answered something tesoro cannot read."
    ),
    UpstreamRejectedError: _upstream(
        502, "upstream-rejected", "An upstream refused tesoro's request."
    ),
    UpstreamNotFoundError: _upstream(
        502, "upstream-not-found", "An upstream does not know the record asked for."
    ),
    UpstreamOutcomeUnknownError: _upstream(
        504,
        "outcome-unknown",
        "A write reached an upstream but no answer came back: it may or may not have landed.",
    ),
    Exception: ProblemKind(
        500,
        "internal-error",
        "Internal Server Error",
        "An unexpected error; it has been logged.",
        detail=lambda exc: "an unexpected error occurred; it has been logged",
    ),
}

# Framework errors (unknown path, method not allowed, unreadable body) by status.
_HTTP_SLUGS = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}


def kind_of(exc: Exception) -> ProblemKind:
    """The table's entry for an exception: its class's, else its closest ancestor's."""
    for cls in type(exc).__mro__:
        found = PROBLEMS.get(cls)
        if found is not None:
            return found
    return PROBLEMS[Exception]


def problem_body(kind: ProblemKind, detail: str, instance: str, **extra: Any) -> Problem:
    return Problem(
        type=kind.type,
        title=kind.title,
        status=kind.status,
        detail=detail,
        instance=instance,
        **extra,
    )


def problem_content(problem: Problem) -> dict[str, Any]:
    return problem.model_dump(mode="json", exclude_none=True)


def problem_of(exc: Exception, instance: str) -> tuple[ProblemKind, Problem]:
    """The problem an exception answers with, by the table."""
    kind = kind_of(exc)
    return kind, problem_body(kind, kind.detail(exc), instance, **kind.members(exc))


def _respond(
    kind: ProblemKind, problem: Problem, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        problem_content(problem),
        status_code=kind.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, StarletteHTTPException) and kind_of(exc) is PROBLEMS[Exception]:
        return _http_error(request, exc)
    if isinstance(exc, RequestValidationError):
        return _validation_error(request, exc)
    kind, problem = problem_of(exc, request.url.path)
    return _respond(kind, problem, kind.headers(exc))


def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    status = exc.status_code
    title = status_title(status)
    slug = _HTTP_SLUGS.get(status) or title.lower().replace(" ", "-")
    kind = ProblemKind(status, slug, title, title)
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers or {})
    if status == 404 and detail == "Not Found":
        detail = f"there is nothing at {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
        headers["Allow"] = _allowed(request)
    return _respond(kind, problem_body(kind, detail, request.url.path), headers)


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


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    found = exc.errors()
    errors = [
        FieldError(
            location=_location(tuple(err.get("loc", ()))),
            message=str(err.get("msg", "")),
            type=str(err.get("type", "")),
        )
        for err in found[:MAX_FIELD_ERRORS]
    ]
    # Never echo the input back: it may be a secret pasted into the wrong field.
    summary = "; ".join(f"{'.'.join(map(str, e.location))}: {e.message}" for e in errors[:5])
    more = f" (and {len(found) - len(errors)} more)" if len(found) > len(errors) else ""
    kind = PROBLEMS[RequestValidationError]
    problem = problem_body(
        kind, f"the request is not valid: {summary}{more}", request.url.path, errors=errors
    )
    return _respond(kind, problem)


def install_error_handlers(app: FastAPI) -> None:
    """One handler for every listed failure; unexpected ones are answered by the
    `UnexpectedErrors` middleware, which logs each once."""
    app.add_exception_handler(StarletteHTTPException, _handle)
    for cls in PROBLEMS:
        if cls is not Exception:
            app.add_exception_handler(cls, _handle)


def problem_responses(
    *statuses: int, descriptions: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` declaration of problem answers for a route, from the table.

    FastAPI puts a response `model` under the route's media type (application/json);
    `app.api.openapi` moves it under `application/problem+json`, the one declared here.
    """
    descriptions = descriptions or {}
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        kinds = [kind for kind in PROBLEMS.values() if kind.status == status]
        headers: dict[str, dict[str, Any]] = {}
        for kind in kinds:
            headers.update(kind.documented_headers)
        text = descriptions.get(status) or " ".join(
            dict.fromkeys(kind.description for kind in kinds)
        )
        declared[status] = {
            "model": Problem,
            "description": text or _HTTP_DESCRIPTIONS.get(status, status_title(status)),
            "content": {PROBLEM_MEDIA_TYPE: {}},
            **({"headers": headers} if headers else {}),
        }
    return declared


_HTTP_DESCRIPTIONS = {400: "The body could not be read at all (e.g. it is not UTF-8 text)."}
