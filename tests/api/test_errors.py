"""Every error is RFC 9457 problem+json, and nothing unexpected leaks a stack trace."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from app.api.errors import PROBLEMS, kind_of, problem_of, problem_responses
from app.domain.models import SourceError, SourceErrorCode, SourceInfo, SourceStatus
from app.main import create_app
from app.services.directory import UnknownCounterpartyError
from app.services.treasury import AllSourcesUnavailableError
from app.settings import Settings
from app.upstreams.errors import (
    UpstreamNotFoundError,
    UpstreamRateLimitedError,
    UpstreamTimeoutError,
)


def test_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert set(problem) >= {"type", "title", "status", "detail"}
    assert problem["status"] == 404


def test_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/positions")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert "GET" in response.headers["allow"]


def test_a_405_allows_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/counterparties")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"


def test_unexpected_exception_is_a_500_problem_without_details() -> None:
    app = create_app(Settings(_env_file=None, sandbox=True))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-internal-detail at line 42")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "secret-internal-detail" not in response.text
    assert "Traceback" not in response.text
    assert response.json()["status"] == 500


# --- the one error table ------------------------------------------------------------------


def test_every_problem_type_is_relative_with_a_plain_slug_of_no_repeated_word() -> None:
    slugs = [kind.slug for kind in PROBLEMS.values()]
    assert len(slugs) == len(set(slugs))
    for kind in PROBLEMS.values():
        assert kind.type == f"/problems/{kind.slug}"
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", kind.slug), kind.slug
        words = kind.slug.split("-")
        assert len(words) == len(set(words)), kind.slug


class _BankSaysSlowDownError(UpstreamRateLimitedError):
    """A failure the table does not list: it answers like its closest listed ancestor."""


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (UpstreamNotFoundError("finsync", "gone"), 502, "upstream-not-found"),
        (UpstreamTimeoutError("finsync", "slow"), 504, "upstream-timeout"),
        (_BankSaysSlowDownError("finqware", "slow down"), 503, "upstream-rate-limited"),
        (UnknownCounterpartyError("finsync:9"), 404, "not-found"),
        (KeyError("a bug"), 500, "internal-error"),
    ],
)
def test_a_failure_answers_by_the_closest_entry_of_its_class(
    exc: Exception, status: int, slug: str
) -> None:
    kind, problem = problem_of(exc, "/here")
    assert (kind.status, kind.slug, problem.status, problem.type) == (
        status,
        slug,
        status,
        f"/problems/{slug}",
    )


def test_an_unknown_id_is_carried_by_the_error_not_parsed_from_its_message() -> None:
    _, problem = problem_of(UnknownCounterpartyError("finqware:nope"), "/counterparties/x")
    assert problem.detail == "no counterparty has the id 'finqware:nope'"


def _unavailable(code: SourceErrorCode) -> AllSourcesUnavailableError:
    error = SourceError(code=code, message="...")
    return AllSourcesUnavailableError(
        [
            SourceInfo(
                source="finqware:bt-main",
                status=SourceStatus.unavailable,
                fetched_at=None,
                error=error,
            )
        ]
    )


def test_retry_after_is_sent_only_when_trying_again_can_help() -> None:
    kind = kind_of(_unavailable(SourceErrorCode.timeout))
    assert kind.headers(_unavailable(SourceErrorCode.timeout)) == {"Retry-After": "30"}
    assert kind.headers(_unavailable(SourceErrorCode.consent_expired)) == {}


def test_the_openapi_error_responses_come_from_the_table() -> None:
    declared = problem_responses(401, 409, 503)
    assert "WWW-Authenticate" in declared[401]["headers"]
    assert "existing_id" in declared[409]["description"]
    assert "Retry-After" in declared[503]["headers"]
