"""Finqware adapter: one consent's balances and accounts; every call a POST, secrets in the body.

Everything inferred about Finqware (`x-inferred` in openapi/finqware.yaml) is in the INFERRED block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, ClassVar

import httpx2
from pydantic import BeforeValidator, Field, PlainValidator, SecretStr, TypeAdapter

from app.upstreams.errors import (
    ConsentExpiredError,
    UpstreamError,
    UpstreamRateLimitedError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)
from app.upstreams.http import NO_RETRIES, RetryPolicy, generic_status_error, send
from app.upstreams.reading import (
    Identifier,
    LenientDate,
    Parsed,
    Text,
    Timestamp,
    TolerantModel,
    WireDecimal,
    decimal_text,
    parse_each,
)

UPSTREAM = "finqware"

# --- INFERRED (x-inferred in openapi/finqware.yaml): confirm against the live API --
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


# --- credit lines ---------------------------------------------------------------------------
# Finqware documents `credit_line` only as null; banks write it in their own shape. Read here:
# null or an empty list (no line), a decimal string or number, an object carrying an amount
# (`amount`/`Amount`/`value`, itself possibly an object with `Amount` and `Currency`), or a
# list of such objects (UK Open Banking's `CreditLine`). Anything else is unreadable.
_AMOUNT_KEYS = ("amount", "value")
# Beyond these a figure is broken data (and exact arithmetic on it would be unbounded):
# the same bounds as the domain's check_amount, for a field the domain never sees raw.
MAX_INTEGER_DIGITS = 30
MAX_PLACES = 400
_CURRENCY_KEYS = ("currency", "ccy")
_TYPE_KEYS = ("type",)


@dataclass(frozen=True)
class CreditLineEntry:
    """One credit line as the bank wrote it; `currency` None when it does not say."""

    amount: Decimal
    currency: str | None = None
    type: str | None = None


def _key(mapping: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for key, value in mapping.items():
        if isinstance(key, str) and key.strip().casefold() in names:
            return value
    return None


def _line_amount(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise ValueError("a credit line amount is a decimal")
    amount = decimal_text(value) if isinstance(value, str) else Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError("a credit line amount is finite and not negative")
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    if exponent < -MAX_PLACES or (not amount.is_zero() and amount.adjusted() >= MAX_INTEGER_DIGITS):
        raise ValueError("a credit line amount is a plausible figure")
    return amount


def _line_entry(value: Any) -> CreditLineEntry:
    if not isinstance(value, Mapping):
        return CreditLineEntry(_line_amount(value))
    currency = _key(value, _CURRENCY_KEYS)
    kind = _key(value, _TYPE_KEYS)
    amount = _key(value, _AMOUNT_KEYS)
    if isinstance(amount, Mapping):
        # UK Open Banking: {"Amount": {"Amount": "5000.00", "Currency": "RON"}}
        inner = _line_entry(amount)
        amount, currency = inner.amount, inner.currency or currency
    else:
        amount = _line_amount(amount)
    if currency is not None and not isinstance(currency, str):
        raise ValueError("a credit line currency is text")
    return CreditLineEntry(
        amount=amount,
        currency=currency.strip().upper() if currency else None,
        type=kind.strip() if isinstance(kind, str) and kind.strip() else None,
    )


def read_credit_line(value: Any) -> tuple[CreditLineEntry, ...] | None:
    """Every shape of `credit_line` above; ValueError when it cannot be read."""
    if isinstance(value, tuple):
        return value  # already read
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, list):
        return tuple(_line_entry(item) for item in value) or None
    return (_line_entry(value),)


CreditLine = Annotated[tuple[CreditLineEntry, ...] | None, PlainValidator(read_credit_line)]


def _indicator_as_text(value: Any) -> Any:
    # Anything but text is an unknown indicator too: interpretation warns, never fails.
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _null_is_not_included(value: Any) -> Any:
    # An entry that does not say it includes the credit line is taken not to.
    return False if value is None else value


class FinqwareBalanceData(TolerantModel):
    """A balance entry's figures. What interpretation needs (amount, indicator, currency,
    type, credit_limit_included) is read leniently too: None means absent or unreadable, and
    the interpreter, not the reader, decides what that costs."""

    # An entry whose credit_limit_included cannot be read may include the line: never picked.
    UNREADABLE_AS: ClassVar[Mapping[str, Any]] = {"credit_limit_included": None}

    amount: WireDecimal | None = None
    credit_debit_indicator: Annotated[str | None, BeforeValidator(_indicator_as_text)] = None
    credit_limit_included: Annotated[bool | None, BeforeValidator(_null_is_not_included)] = False
    credit_line: CreditLine = None
    currency: str | None = None
    native_date: LenientDate | None = None
    native_timestamp: Timestamp | None = None
    type: Text | None = None


class FinqwareBalance(TolerantModel):
    """One balance entry of `/balances/get`; `timestamp` has no zone (it is UTC)."""

    account_id: Identifier
    id: Text | None = None
    timestamp: Timestamp | None = None
    data: FinqwareBalanceData = Field(default_factory=FinqwareBalanceData)


class FinqwareAccountScheme(TolerantModel):
    scheme_name: Text | None = None
    identification: Text | None = None


class FinqwareAccountData(TolerantModel):
    name: Text | None = None
    nickname: Text | None = None
    currency: str | None = None
    account_type: Text | None = None
    account_sub_type: Text | None = None
    account_schemes: list[FinqwareAccountScheme] = Field(default_factory=list)

    @property
    def iban(self) -> str | None:
        for scheme in self.account_schemes:
            if (scheme.scheme_name or "").strip().upper() == "IBAN" and scheme.identification:
                return scheme.identification
        return None


class FinqwareAccount(TolerantModel):
    """One bank account of `/accounts/get`; its `id` is the balances' `account_id`."""

    id: Identifier
    servicer_id: Text | None = None
    servicer_name: Text | None = None
    timestamp: Timestamp | None = None
    data: FinqwareAccountData = Field(default_factory=FinqwareAccountData)


_BALANCE = TypeAdapter(FinqwareBalance)
_ACCOUNT = TypeAdapter(FinqwareAccount)


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    status = response.status_code
    code = body.get("code") if isinstance(body, dict) else None
    kind = body.get("type") if isinstance(body, dict) else None
    code = code if isinstance(code, str) else None
    if status == 401:
        if code in CONSENT_GONE_CODES:
            return ConsentExpiredError(
                UPSTREAM, f"the consent is no longer valid ({code}); a new onboarding is needed"
            )
        detail = f" ({code})" if code else ""
        return UpstreamUnauthorizedError(UPSTREAM, f"the tenant credentials were refused{detail}")
    if status == 400 and (kind == "external_api_error" or (code or "").startswith("external_api_")):
        if code in BANK_RATE_LIMIT_CODES:
            return UpstreamRateLimitedError(UPSTREAM, "the bank's rate limit was reached")
        if code == "external_api_unauthorized":
            return ConsentExpiredError(
                UPSTREAM, "the bank refused the consent (external_api_unauthorized)"
            )
        return UpstreamUnavailableError(
            UPSTREAM, f"the bank failed ({code or 'external_api_error'})"
        )
    if status == 400 and code:
        return UpstreamRejectedError(UPSTREAM, f"rejected the request ({code})")
    if status == 429:
        return UpstreamRateLimitedError(UPSTREAM, "rate limited")
    return generic_status_error(UPSTREAM, response)


class FinqwareClient:
    """Talks to Finqware over an injected ``httpx2.AsyncClient`` whose base URL ends in ``/v1``."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        client_id: str,
        client_secret: SecretStr,
        retries: RetryPolicy = NO_RETRIES,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._retries = retries

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
        # A POST, but a read: Finqware's calls only fetch, so they are retried like reads.
        return await send(
            self._http,
            UPSTREAM,
            "POST",
            route,
            json_body=self._body(consent),
            map_error=_map_error,
            retries=self._retries,
        )

    async def get_balances(self, consent: ConsentCredentials) -> Parsed[FinqwareBalance]:
        """Every balance entry; entries without a readable `account_id` come back rejected."""
        body = await self._post("balances/get", consent)
        return parse_each(UPSTREAM, _BALANCE, body, "balances")

    async def get_accounts(self, consent: ConsentCredentials) -> Parsed[FinqwareAccount]:
        """Every bank account; accounts without a readable `id` come back rejected."""
        body = await self._post("accounts/get", consent)
        return parse_each(UPSTREAM, _ACCOUNT, body, "accounts")
