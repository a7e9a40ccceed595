"""Reads are tried again on transient failures, within their deadline; writes never are."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
import stamina
from pydantic import SecretStr

from app.upstreams.errors import (
    ConsentExpiredError,
    UpstreamOutcomeUnknownError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from app.upstreams.finqware import ConsentCredentials, FinqwareClient
from app.upstreams.finsync import FinsyncClient
from app.upstreams.http import RetryPolicy

pytestmark = pytest.mark.anyio

POLICY = RetryPolicy(attempts=3, deadline_seconds=5)
CONSENT = ConsentCredentials(
    credentials_id=SecretStr("cred"), access_token=SecretStr("token"), tenant_user_id="u"
)
CLIENT = {"id": 1, "name": "Caja", "type": 0, "accounts": []}


@pytest.fixture(autouse=True)
def retrying() -> Iterator[None]:
    # stamina's testing switch: the policy's three tries, without the waits between them.
    with stamina.set_testing(True, attempts=3):
        yield


class Script:
    """Answers in turn from a list (the last one repeats), counting the calls."""

    def __init__(self, *answers: httpx2.Response | type[Exception]) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, type):
            raise answer("scripted", request=request)  # type: ignore[call-arg]
        return answer


def finsync(script: Script) -> FinsyncClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(script), base_url="https://f.test")
    return FinsyncClient(http, api_key=SecretStr("k"), retries=POLICY)


def finqware(script: Script) -> FinqwareClient:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(script), base_url="https://q.test/v1/")
    return FinqwareClient(http, client_id="t", client_secret=SecretStr("s"), retries=POLICY)


async def test_a_read_that_fails_transiently_is_tried_again_until_it_answers() -> None:
    script = Script(httpx2.Response(503), httpx2.ConnectError, httpx2.Response(200, json=CLIENT))
    assert (await finsync(script).get_client(1)).name == "Caja"
    assert script.calls == 3


async def test_the_banks_rate_limit_is_tried_again() -> None:
    limited = httpx2.Response(
        400,
        json={"type": "external_api_error", "code": "external_api_too_many_requests"},
    )
    script = Script(limited, httpx2.Response(200, json=[]))
    assert list(await finqware(script).get_balances(CONSENT)) == []
    assert script.calls == 2


async def test_tries_stop_at_the_policys_count() -> None:
    script = Script(httpx2.Response(502))
    with pytest.raises(UpstreamUnavailableError):
        await finsync(script).get_client(1)
    assert script.calls == 3


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx2.ReadTimeout, UpstreamTimeoutError),
        (
            httpx2.Response(401, json={"type": "unauthorized", "code": "expired_credentials"}),
            ConsentExpiredError,
        ),
    ],
)
async def test_a_time_out_or_a_permanent_failure_is_not_tried_again(
    answer: httpx2.Response | type[Exception], error: type[Exception]
) -> None:
    script = Script(answer)
    with pytest.raises(error):
        await finqware(script).get_balances(CONSENT)
    assert script.calls == 1


async def test_a_create_is_never_sent_twice() -> None:
    script = Script(httpx2.RemoteProtocolError, httpx2.Response(201, json=CLIENT))
    with pytest.raises(UpstreamOutcomeUnknownError):
        await finsync(script).create_client("Caja", None)
    assert script.calls == 1
