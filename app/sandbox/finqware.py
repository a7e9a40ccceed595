"""Finqware simulator: ``POST /v1/balances/get`` and ``/v1/accounts/get``, secrets in the body.

Every call is a ``POST`` whose JSON body carries ``client_id``, ``client_secret``,
``credentials_id``, ``access_token`` and ``tenant_user_id`` (`FINQWARE_CLIENT_ID`,
`FINQWARE_CLIENT_SECRET` and one of `SANDBOX_CONSENTS`), and optionally ``filter`` with any
of ``account_id``, ``type`` and ``currency``. The answer is a full JSON array (no paging).

Errors are ``{"id", "type", "http", "code", "message"}``:

* 400 ``invalid_request``: ``invalid_body`` (not a JSON object, or not sent as
  ``application/json``), ``missing_fields``,
  ``unknown_fields``, ``invalid_field`` (a non-string secret, a bad ``filter``).
* 401 ``unauthorized``: ``invalid_client_id``, ``invalid_client_secret``,
  ``invalid_credentials_id``, ``invalid_access_token`` (not the consent's token), and
  ``expired_credentials`` for an expired consent ("brd-legacy").

``tenant_user_id`` is any string: Finqware treats it as the tenant's opaque id.
``GET``/``PUT /_sandbox/faults`` switch faults (see `app.sandbox.faults`), without auth.

The "renewed consent" behaviour, off by default, is switched by ``app.state.store.renewed``
or ``GET``/``PUT /_sandbox/renewed-consent`` (``{"on": true}``), without auth: while it is
on, `RENEWED_CONSENT` (``bt-renewed``, Banca Transilvania onboarded again) is a valid
consent reaching ``bt-main``'s accounts by IBAN under new account ids
(`RENEWED_ACCOUNTS`); while it is off, its credentials are unknown
(``invalid_credentials_id``), as before the new onboarding.

``app.state.store`` is the live `FinqwareStore`, ``app.state.faults`` the `Faults` and
``app.state.calls`` a ``Counter`` keyed ``"POST /v1/balances/get"`` and
``"POST /v1/accounts/get"``; ``app.state.calls_by_consent`` counts the same calls keyed
``(route, consent key)``.
"""

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.sandbox.data import (
    EXPIRED_CONSENT_KEYS,
    FINQWARE_ACCOUNTS,
    FINQWARE_CLIENT_ID,
    FINQWARE_CLIENT_SECRET,
    FINQWARE_SERVICERS,
    NO_SHIFT,
    RENEWED_ACCOUNTS,
    RENEWED_CONSENT,
    SANDBOX_CONSENTS,
    FinqwareAccount,
    FinqwareServicer,
    SandboxConsent,
    seed_shift,
    shifted_finqware_account,
)
from app.sandbox.faults import (
    FINSYNC_ONLY,
    Faults,
    bad_gateway,
    fault_control_route,
    sends_json,
    simulate_latency,
    truncated,
)

GET_BALANCES = "POST /v1/balances/get"
GET_ACCOUNTS = "POST /v1/accounts/get"
RENEWED_CONSENT_PATH = "/_sandbox/renewed-consent"

REQUIRED_FIELDS: tuple[str, ...] = (
    "client_id",
    "client_secret",
    "credentials_id",
    "access_token",
    "tenant_user_id",
)
FILTER_KEYS: tuple[str, ...] = ("account_id", "type", "currency")

# Error ids are uuid5 of a per-app counter: unique per answer, yet the same on every run.
_ERROR_ID_NAMESPACE = uuid.UUID("3f1af36b-4c33-48d5-8348-44965023a0e1")

JsonObject = dict[str, object]


class FinqwareStore:
    """The simulator's Finqware data: consents, their accounts, and which have expired."""

    def __init__(
        self,
        consents: Iterable[SandboxConsent] = SANDBOX_CONSENTS,
        accounts: Iterable[FinqwareAccount] = FINQWARE_ACCOUNTS,
        servicers: Mapping[str, FinqwareServicer] = FINQWARE_SERVICERS,
        expired: Iterable[str] = EXPIRED_CONSENT_KEYS,
        *,
        shift: timedelta = NO_SHIFT,
        renewal: SandboxConsent = RENEWED_CONSENT,
        renewal_accounts: Iterable[FinqwareAccount] = RENEWED_ACCOUNTS,
    ) -> None:
        """`shift` moves the accounts' timestamps and dates (see `seed_shift`); `renewal` is
        the consent known only while `renewed` is on, reaching `renewal_accounts`."""
        self._by_credentials = {c.credentials_id: c for c in consents}
        self._renewal = renewal
        self._accounts = tuple(
            shifted_finqware_account(a, shift) for a in (*accounts, *renewal_accounts)
        )
        self._servicers = dict(servicers)
        self.expired: set[str] = set(expired)
        """Consent keys whose calls answer ``expired_credentials``; tests may add to it."""
        self.renewed = False
        """The "renewed consent" switch: while on, `renewal` is a valid consent too."""

    def consent(self, credentials_id: object) -> SandboxConsent | None:
        if not isinstance(credentials_id, str):
            return None
        if self.renewed and credentials_id == self._renewal.credentials_id:
            return self._renewal
        return self._by_credentials.get(credentials_id)

    @property
    def renewal_key(self) -> str:
        return self._renewal.key

    def accounts(self, consent_key: str) -> list[FinqwareAccount]:
        return [a for a in self._accounts if a.consent_key == consent_key]

    def set_amounts(self, account_id: str, amounts: Mapping[str, str]) -> None:
        """Change the amounts of one account's balances, by balance id (the decimal strings
        the bank will send); its other balances stay as they are."""
        for index, account in enumerate(self._accounts):
            if account.id == account_id:
                balances = tuple(
                    replace(b, amount=amounts[b.id]) if b.id in amounts else b
                    for b in account.balances
                )
                self._accounts = (
                    *self._accounts[:index],
                    replace(account, balances=balances),
                    *self._accounts[index + 1 :],
                )
                return
        raise KeyError(account_id)

    def servicer(self, consent_key: str) -> FinqwareServicer:
        return self._servicers[consent_key]


def create_finqware_app(faults: Faults | None = None) -> Starlette:
    """A fresh Finqware simulator, routes under ``/v1`` like ``api.finqware.com/v1``."""
    store = FinqwareStore(shift=seed_shift())
    simulator = _FinqwareSimulator(store, Faults() if faults is None else faults)
    app = Starlette(
        routes=[
            simulator.route(GET_BALANCES, simulator.balances),
            simulator.route(GET_ACCOUNTS, simulator.accounts),
            fault_control_route(simulator.faults),
            _renewal_control_route(simulator.store),
        ],
        exception_handlers={HTTPException: simulator.http_exception},
    )
    app.state.store = simulator.store
    app.state.faults = simulator.faults
    app.state.calls = simulator.calls
    app.state.calls_by_consent = simulator.calls_by_consent
    return app


class _RejectedError(Exception):
    """A request Finqware turns down with one of its error objects."""

    def __init__(self, http: int, type: str, code: str, message: str) -> None:
        super().__init__(message)
        self.http, self.type, self.code, self.message = http, type, code, message


@dataclass(frozen=True)
class _Call:
    consent: SandboxConsent
    filter: dict[str, str]

    def matches(self, **fields: str) -> bool:
        return all(self.filter.get(key, value) == value for key, value in fields.items())


Answer = Callable[[_Call], list[JsonObject]]


class _FinqwareSimulator:
    def __init__(self, store: FinqwareStore, faults: Faults) -> None:
        self.store = store
        self.faults = faults
        self.calls: Counter[str] = Counter()
        # The same calls by consent key too ("" when the body names no known consent), so
        # tests can tell which bank connection was asked.
        self.calls_by_consent: Counter[tuple[str, str]] = Counter()
        self._errors = 0

    def route(self, key: str, answer: Answer) -> Route:
        method, path = key.split(" ")

        async def endpoint(request: Request) -> Response:
            return await self._serve(request, key, answer)

        return Route(path, endpoint, methods=[method])

    async def _serve(self, request: Request, key: str, answer: Answer) -> Response:
        self.calls[key] += 1
        payload = _parse(await request.body()) if sends_json(request) else None
        consent = self.store.consent(payload.get("credentials_id")) if payload is not None else None
        self.calls_by_consent[key, "" if consent is None else consent.key] += 1
        consent_key = "" if consent is None else consent.key
        mode = self.faults.pending(consent_key)
        if mode in FINSYNC_ONLY:  # creates and a paged list: nothing of the kind here
            mode = "none"
        if mode != "none":
            self.faults.consume()
        await simulate_latency(request, self.faults, mode, consent_key)
        if mode == "error":
            return self._error(500, "api_error", "internal_server_error", "Internal server error")
        if mode == "rate_limited":
            return self._error(
                400,
                "external_api_error",
                "external_api_too_many_requests",
                "The bank rejected the request: too many requests",
            )
        if mode == "html":
            return bad_gateway()
        if mode == "unauthorized":
            return self._error(401, "unauthorized", "invalid_access_token", "Invalid access token")
        try:
            response: Response = JSONResponse(answer(self._validate(payload)))
        except _RejectedError as exc:
            response = self._error(exc.http, exc.type, exc.code, exc.message)
        return truncated(response) if mode == "truncated" else response

    def _validate(self, payload: JsonObject | None) -> _Call:
        if payload is None:
            raise _invalid("invalid_body", "Body must be a JSON object sent as application/json")
        missing = [name for name in REQUIRED_FIELDS if name not in payload]
        if missing:
            raise _invalid("missing_fields", f"Missing required fields: {', '.join(missing)}")
        unknown = sorted(set(payload) - {*REQUIRED_FIELDS, "filter"})
        if unknown:
            raise _invalid("unknown_fields", f"Unknown fields: {', '.join(unknown)}")
        for name in REQUIRED_FIELDS:
            if not isinstance(payload[name], str):
                raise _invalid("invalid_field", f"{name} must be a string")
        filters = _filter(payload["filter"]) if "filter" in payload else {}
        if payload["client_id"] != FINQWARE_CLIENT_ID:
            raise _unauthorized("invalid_client_id", "Invalid client_id")
        if payload["client_secret"] != FINQWARE_CLIENT_SECRET:
            raise _unauthorized("invalid_client_secret", "Invalid client_secret")
        consent = self.store.consent(payload["credentials_id"])
        if consent is None:
            raise _unauthorized("invalid_credentials_id", "Invalid credentials_id")
        if payload["access_token"] != consent.access_token:
            raise _unauthorized("invalid_access_token", "Invalid access token")
        if consent.key in self.store.expired:
            raise _unauthorized("expired_credentials", "The consent has expired")
        return _Call(consent, filters)

    def balances(self, call: _Call) -> list[JsonObject]:
        return [
            {
                "account_id": account.id,
                "id": balance.id,
                "timestamp": account.queried_at,
                "data": {
                    "amount": balance.amount,
                    "credit_debit_indicator": balance.credit_debit_indicator,
                    "credit_limit_included": balance.credit_limit_included,
                    "credit_line": balance.credit_line,
                    "currency": account.currency,
                    # Some banks give no date at all: the key is then absent, not null.
                    **({} if balance.native_date is None else {"native_date": balance.native_date}),
                    "native_timestamp": balance.native_timestamp,
                    "type": balance.type,
                },
            }
            for account in self.store.accounts(call.consent.key)
            for balance in account.balances
            if call.matches(account_id=account.id, currency=account.currency, type=balance.type)
        ]

    def accounts(self, call: _Call) -> list[JsonObject]:
        servicer = self.store.servicer(call.consent.key)
        # `type` filters balance types, which accounts/get has none of at the top level.
        return [
            {
                "id": account.id,
                "servicer_id": servicer.id,
                "servicer_name": servicer.name,
                "timestamp": account.listed_at,
                "data": {
                    "name": account.name,
                    "nickname": account.nickname,
                    "currency": account.currency,
                    "account_type": account.account_type,
                    "account_sub_type": account.account_sub_type,
                    "account_schemes": [
                        {"scheme_name": "IBAN", "identification": account.iban},
                        {"scheme_name": "BICFI", "identification": account.bic},
                    ],
                    "balances": [
                        {
                            "balance_amount": balance.amount,
                            "balance_currency": account.currency,
                            "balance_type": balance.type,
                            "credit_limit_included": balance.credit_limit_included,
                            "credit_debit_indicator": balance.credit_debit_indicator,
                        }
                        for balance in account.balances
                    ],
                },
            }
            for account in self.store.accounts(call.consent.key)
            if call.matches(account_id=account.id, currency=account.currency)
        ]

    def _error(self, http: int, type: str, code: str, message: str) -> Response:
        self._errors += 1
        error_id = uuid.uuid5(_ERROR_ID_NAMESPACE, str(self._errors))
        body = {"id": str(error_id), "type": type, "http": http, "code": code, "message": message}
        return JSONResponse(body, status_code=http)

    async def http_exception(self, request: Request, exc: Exception) -> Response:
        # Unknown paths and methods answer with Finqware's error object, not Starlette's text.
        assert isinstance(exc, HTTPException)
        code = "not_found" if exc.status_code == 404 else "method_not_allowed"
        response = self._error(exc.status_code, "invalid_request", code, exc.detail)
        response.headers.update(exc.headers or {})
        return response


def _renewal_control_route(store: FinqwareStore) -> Route:
    """``GET``/``PUT /_sandbox/renewed-consent``: ``{"on": bool}``, the renewal switch."""

    async def control(request: Request) -> Response:
        if request.method == "PUT":
            payload = _parse(await request.body())
            if payload is None or set(payload) != {"on"} or not isinstance(payload["on"], bool):
                return JSONResponse({"error": 'the body must be {"on": true|false}'}, 400)
            store.renewed = payload["on"]
        return JSONResponse({"on": store.renewed, "consent": store.renewal_key})

    return Route(RENEWED_CONSENT_PATH, control, methods=["GET", "PUT"])


def _parse(body: bytes) -> JsonObject | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _filter(raw: object) -> dict[str, str]:
    # The documented type is an object: null is refused like any other non-object.
    if not isinstance(raw, dict):
        raise _invalid("invalid_field", "filter must be an object")
    unknown = sorted(set(raw) - set(FILTER_KEYS))
    if unknown:
        raise _invalid("invalid_field", f"Unknown filter keys: {', '.join(unknown)}")
    for key, value in raw.items():
        if not isinstance(value, str):
            raise _invalid("invalid_field", f"filter.{key} must be a string")
    return dict(raw)


def _invalid(code: str, message: str) -> _RejectedError:
    return _RejectedError(400, "invalid_request", code, message)


def _unauthorized(code: str, message: str) -> _RejectedError:
    return _RejectedError(401, "unauthorized", code, message)
