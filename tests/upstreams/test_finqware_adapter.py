"""FinqwareClient against a fake Finqware at the transport."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from app.upstreams.errors import (
    ConsentExpiredError,
    UpstreamBadResponseError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)
from app.upstreams.finqware import ConsentCredentials, FinqwareClient
from tests.support.finqware import balance_entry

pytestmark = pytest.mark.anyio

CONSENT = ConsentCredentials(
    credentials_id=SecretStr("cred-123"),
    access_token=SecretStr("token-secret-abc"),
    tenant_user_id="user-1",
)
SECRETS = ("tenant-secret-xyz", "token-secret-abc", "cred-123")

BALANCE = balance_entry(
    timestamp="2020-01-29T07:31:51.689168",
    amount="210.23001",
    native_date="2018-03-30",
    native_timestamp=None,
    type="Expected",
)


def make(handler: Any) -> FinqwareClient:
    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(handler), base_url="https://api.finqware.test/v1/"
    )
    return FinqwareClient(http, client_id="tenant", client_secret=SecretStr("tenant-secret-xyz"))


def error(status: int, type_: str, code: str) -> httpx2.Response:
    return httpx2.Response(
        status,
        json={"id": "e1", "type": type_, "http": status, "code": code, "message": code},
    )


async def test_balances_posts_only_documented_keys_to_the_v1_route() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json=[BALANCE])

    balances = await make(handler).get_balances(CONSENT)
    assert seen[0].method == "POST"
    assert seen[0].url.path == "/v1/balances/get"
    assert json.loads(seen[0].content) == {
        "client_id": "tenant",
        "client_secret": "tenant-secret-xyz",
        "credentials_id": "cred-123",
        "access_token": "token-secret-abc",
        "tenant_user_id": "user-1",
    }
    assert balances[0].data.amount == Decimal("210.23001")
    assert balances[0].data.native_timestamp is None
    # Finqware writes it without a zone; it is UTC by convention and read as such.
    assert balances[0].timestamp == datetime(2020, 1, 29, 7, 31, 51, 689168, tzinfo=UTC)


async def test_accounts_parse_iban_and_bank_name() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/accounts/get"
        return httpx2.Response(
            200,
            json=[
                {
                    "id": "acc-1",
                    "servicer_id": "bt",
                    "servicer_name": "Banca Transilvania",
                    "timestamp": "2021-02-01T13:14:52Z",
                    "data": {
                        "name": "",
                        "nickname": "",
                        "currency": "RON",
                        "account_schemes": [
                            {"scheme_name": "BICFI", "identification": "BTRLRO22"},
                            {"scheme_name": "IBAN", "identification": "RO49AAAA1B31007593840000"},
                        ],
                        "balances": [],
                    },
                }
            ],
        )

    accounts = await make(handler).get_accounts(CONSENT)
    assert accounts[0].data.iban == "RO49AAAA1B31007593840000"
    assert accounts[0].servicer_name == "Banca Transilvania"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (error(401, "unauthorized", "expired_credentials"), ConsentExpiredError),
        (error(401, "unauthorized", "inactive_credentials"), ConsentExpiredError),
        (error(401, "unauthorized", "invalid_client_secret"), UpstreamUnauthorizedError),
        (
            error(400, "external_api_error", "external_api_too_many_requests"),
            UpstreamRateLimitedError,
        ),
        (
            error(400, "external_api_error", "external_api_connection_error"),
            UpstreamUnavailableError,
        ),
        (error(400, "invalid_request", "unknown_fields"), UpstreamRejectedError),
        (httpx2.Response(500, json={"message": "internal"}), UpstreamUnavailableError),
        (
            httpx2.Response(
                503, content=b"<html>down</html>", headers={"content-type": "text/html"}
            ),
            UpstreamUnavailableError,
        ),
        (httpx2.Response(200, json={"balances": []}), UpstreamBadResponseError),
        (httpx2.Response(200, content=b'[{"account_id": "a", "id"'), UpstreamBadResponseError),
        # Not a list where a list is due: the envelope is broken, not one record.
        (httpx2.Response(200, json=None), UpstreamBadResponseError),
    ],
)
async def test_errors_map_to_stable_codes_without_secrets(
    response: httpx2.Response, expected: type[Exception]
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return response

    with pytest.raises(expected) as caught:
        await make(handler).get_balances(CONSENT)
    assert not any(secret in str(caught.value) for secret in SECRETS)


async def test_consent_expired_code_is_consent_expired() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return error(401, "unauthorized", "expired_credentials")

    with pytest.raises(ConsentExpiredError) as caught:
        await make(handler).get_accounts(CONSENT)
    assert caught.value.code == "consent_expired"
    assert not caught.value.transient


async def test_bank_rate_limit_is_transient_rate_limited() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return error(400, "external_api_error", "external_api_too_many_requests")

    with pytest.raises(UpstreamRateLimitedError) as caught:
        await make(handler).get_balances(CONSENT)
    assert caught.value.code == "rate_limited"
    assert caught.value.transient


async def test_a_null_credit_limit_included_reads_as_not_included() -> None:
    entry = {**BALANCE, "data": {**BALANCE["data"], "credit_limit_included": None}}

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=[entry])

    balances = await make(handler).get_balances(CONSENT)
    assert balances[0].data.credit_limit_included is False
