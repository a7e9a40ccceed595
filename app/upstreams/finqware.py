"""Finqware adapter: one consent's balances and accounts; every call a POST, secrets in the body.

Everything inferred about Finqware (see upstreams.md) is in the INFERRED block below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx2
from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

from app.upstreams.errors import (
    ConsentExpiredError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)
from app.upstreams.http import generic_status_error, parse, send

UPSTREAM = "finqware"

# --- INFERRED (upstreams.md): confirm against the live API -------------------
# 401 codes that mean the end user's consent is gone (only a new onboarding helps),
# as opposed to our tenant secrets being wrong.
CONSENT_GONE_CODES = frozenset(
    {
        "expired_credentials",
        "inactive_credentials",
        "invalid_credentials_id",
        "invalid_access_token",
        "revoked_credentials",
    }
)
# The bank behind Finqware failed: transient. Its rate limit arrives as a 400.
BANK_RATE_LIMIT_CODES = frozenset({"external_api_too_many_requests"})
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentCredentials:
    """What Finqware needs to act for one consent. Secrets stay SecretStr until sent."""

    credentials_id: SecretStr
    access_token: SecretStr
    tenant_user_id: str


class FinqwareBalanceData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    amount: Decimal
    credit_debit_indicator: str
    credit_limit_included: bool = False
    credit_line: Decimal | None = None
    currency: str
    native_date: date | None = None
    native_timestamp: datetime | None = None
    type: str

    @field_validator("credit_debit_indicator", mode="before")
    @classmethod
    def _indicator_as_text(cls, value: Any) -> Any:
        # Anything but text is an unknown indicator too: interpretation warns, never fails.
        if isinstance(value, str):
            return value
        return "null" if value is None else str(value)

    @field_validator("credit_limit_included", mode="before")
    @classmethod
    def _null_is_not_included(cls, value: Any) -> Any:
        # An entry that does not say it includes the credit line is taken not to.
        return False if value is None else value


class FinqwareBalance(BaseModel):
    """One balance entry of `/balances/get`; `timestamp` has no zone (it is UTC)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    account_id: str
    id: str
    timestamp: datetime
    data: FinqwareBalanceData


class FinqwareAccountScheme(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    scheme_name: str
    identification: str


class FinqwareAccountData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str | None = None
    nickname: str | None = None
    currency: str | None = None
    account_type: str | None = None
    account_sub_type: str | None = None
    account_schemes: list[FinqwareAccountScheme] = Field(default_factory=list)

    @property
    def iban(self) -> str | None:
        for scheme in self.account_schemes:
            if scheme.scheme_name.upper() == "IBAN":
                return scheme.identification
        return None


class FinqwareAccount(BaseModel):
    """One bank account of `/accounts/get`; its `id` is the balances' `account_id`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    servicer_id: str | None = None
    servicer_name: str | None = None
    timestamp: datetime | None = None
    data: FinqwareAccountData


_BALANCES = TypeAdapter(list[FinqwareBalance])
_ACCOUNTS = TypeAdapter(list[FinqwareAccount])


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    status = response.status_code
    code = body.get("code") if isinstance(body, dict) else None
    kind = body.get("type") if isinstance(body, dict) else None
    code = code if isinstance(code, str) else None
    if status == 401:
        if code in CONSENT_GONE_CODES:
            return ConsentExpiredError(
                UPSTREAM,
                f"the consent is no longer valid ({code}); a new onboarding is needed",
                status_code=status,
            )
        detail = f" ({code})" if code else ""
        return UpstreamUnauthorizedError(
            UPSTREAM, f"the tenant credentials were refused{detail}", status_code=status
        )
    if status == 400 and (kind == "external_api_error" or (code or "").startswith("external_api_")):
        if code in BANK_RATE_LIMIT_CODES:
            return UpstreamRateLimitedError(
                UPSTREAM, "the bank's rate limit was reached", status_code=status
            )
        if code == "external_api_unauthorized":
            return ConsentExpiredError(
                UPSTREAM,
                "the bank refused the consent (external_api_unauthorized)",
                status_code=status,
            )
        return UpstreamUnavailableError(
            UPSTREAM, f"the bank failed ({code or 'external_api_error'})", status_code=status
        )
    if status == 400 and code:
        return UpstreamRejectedError(UPSTREAM, f"rejected the request ({code})", status_code=status)
    if status == 429:
        return UpstreamRateLimitedError(UPSTREAM, "rate limited", status_code=status)
    return generic_status_error(UPSTREAM, response)


class FinqwareClient:
    """Talks to Finqware over an injected ``httpx2.AsyncClient`` whose base URL ends in ``/v1``."""

    def __init__(
        self, http: httpx2.AsyncClient, *, client_id: str, client_secret: SecretStr
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret

    def _body(self, consent: ConsentCredentials) -> dict[str, str]:
        # Only documented keys: Finqware rejects unknown ones (unknown_fields).
        return {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "credentials_id": consent.credentials_id.get_secret_value(),
            "access_token": consent.access_token.get_secret_value(),
            "tenant_user_id": consent.tenant_user_id,
        }

    async def _post(self, route: str, consent: ConsentCredentials) -> Any:
        # Relative to the base URL, which carries the /v1 prefix.
        return await send(
            self._http, UPSTREAM, "POST", route, json_body=self._body(consent), map_error=_map_error
        )

    async def get_balances(self, consent: ConsentCredentials) -> list[FinqwareBalance]:
        body = await self._post("balances/get", consent)
        if not isinstance(body, list):
            raise UpstreamBadResponseError(UPSTREAM, "balances answer is not a list")
        return parse(UPSTREAM, _BALANCES, body, "balances")

    async def get_accounts(self, consent: ConsentCredentials) -> list[FinqwareAccount]:
        body = await self._post("accounts/get", consent)
        if not isinstance(body, list):
            raise UpstreamBadResponseError(UPSTREAM, "accounts answer is not a list")
        return parse(UPSTREAM, _ACCOUNTS, body, "accounts")
