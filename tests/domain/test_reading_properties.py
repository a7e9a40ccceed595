"""Property tests of tolerant reading: a mangled optional upstream field costs only itself."""

from __future__ import annotations

import asyncio
import json
import re
import string
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NoReturn

import httpx2
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from app.domain.interpret import (
    CREDIT_LINE_OTHER_CURRENCY,
    UNREADABLE_FIELD,
    BalanceOrders,
    Interpreted,
    interpret_finqware,
    interpret_finsync,
)
from app.domain.models import MONEY_PATTERN, Meaning, Side
from app.domain.snapshot import encode_json
from app.upstreams.errors import UpstreamError
from app.upstreams.finqware import ConsentCredentials, FinqwareClient
from app.upstreams.finsync import FinsyncClient, FinsyncClientRecord
from tests.support.finqware import BALANCE_DATA_KEYS, BALANCE_KEYS, balance_entry
from tests.support.interpreted import FETCHED_AT

CONSENT = ConsentCredentials(
    credentials_id=SecretStr("cred-123"),
    access_token=SecretStr("token-secret-abc"),
    tenant_user_id="user-1",
)
KEY = "bt-main"
READING = settings(max_examples=80, deadline=None)

# --- arbitrary JSON -------------------------------------------------------------------------


class RawNumber(str):
    """A JSON number written exactly as this text (one Python cannot hold as it stands)."""

    __slots__ = ()


def to_json(value: object) -> str:
    """JSON text of a value; a Decimal is written digit for digit, as the number it is."""
    if isinstance(value, RawNumber):
        return str.__str__(value)
    if isinstance(value, Decimal):
        assert value.is_finite()
        return str(value)
    if isinstance(value, dict):
        members = (f"{json.dumps(key)}: {to_json(item)}" for key, item in value.items())
        return "{" + ", ".join(members) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    return json.dumps(value, allow_nan=False)


# Values where readers tend to break: number-like, date-like and blank text, lone surrogates
# and controls, exponents beyond what a decimal context or an int conversion can take.
ODD_TEXT = [
    "",
    " ",
    "\t\n",
    "null",
    "NaN",
    "-Infinity",
    "sNaN",
    "-0",
    "-1",
    "1e999999999",
    "1e-999999999",
    "0.000001",
    "2026-02-30",
    "2026-05-04",
    "2026-05-04T10:00:00",
    "2026-05-04 10:00:00+0200",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "credit",
    "IBAN",
    "\ud800",
    "a\udfffb",
    "\x00",
    "\u202e",
    "\U0001f3e6",
    "İ",
]
ODD_NUMBERS: list[object] = [
    Decimal("-0"),
    Decimal("-0.00"),
    Decimal("1E+400"),
    Decimal("-1E-400"),
    Decimal("1E+100000"),
    Decimal("1E+1000000"),
    Decimal("1E-1000000"),
    2**63,
    -(2**64),
    10**40,
    # One digit more than Python decodes by default (sys.int_info.default_max_str_digits).
    RawNumber("1" + "0" * 4300),
]
odd_values: st.SearchStrategy[Any] = st.sampled_from([*ODD_TEXT, *ODD_NUMBERS])
json_leaves: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=6)
    | odd_values
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# What a mangled field is given: an odd value about a third of the time.
replacements: st.SearchStrategy[Any] = odd_values | json_leaves | json_values


def extra_keys(known: frozenset[str]) -> st.SearchStrategy[str]:
    """Keys the reader does not know (`unreadable` is the reader's own name for a field)."""
    odd = st.sampled_from(ODD_TEXT) | st.text(max_size=8)
    return st.just("unreadable") | odd.filter(lambda key: key not in known)


def optional_fields(
    draw: st.DrawFn,
    valid: Mapping[str, object],
    known: frozenset[str],
    path: str,
    mangled: set[str],
) -> dict[str, object]:
    """A record's optional fields: each as `valid`, or for a drawn subset, any JSON or left
    out (its path is added to `mangled`); then unknown keys with any JSON."""
    fields: dict[str, object] = {}
    for key, value in valid.items():
        if not draw(st.booleans()):
            fields[key] = value
            continue
        mangled.add(path + key)
        if draw(st.integers(0, 3)):
            fields[key] = draw(replacements)
    fields.update(draw(st.dictionaries(extra_keys(known), replacements, max_size=2)))
    return fields


def _long_int(text: str) -> int | Decimal:
    return int(text) if len(text) <= 4000 else Decimal(text)


def reads_as(sent: object, shown: str, fallback: str) -> bool:
    """Whether informational text sent as `sent` is rightly shown as `shown`: text or a number
    as written, trimmed, else `fallback`; text no UTF-8 answer can carry (a lone surrogate)
    may be shown as anything not blank."""
    decoded = json.loads(to_json(sent), parse_float=Decimal, parse_int=_long_int)
    if isinstance(decoded, bool) or not isinstance(decoded, str | int | Decimal):
        return shown == fallback
    text = str(decoded).strip()
    if not text:
        return shown == fallback
    try:
        text.encode()
    except UnicodeEncodeError:
        return bool(shown.strip())
    return shown == text


# --- checks shared by both upstreams -------------------------------------------------------

MONEY = re.compile(MONEY_PATTERN)
MONEY_KEYS = frozenset({"amount", "available", "available_with_credit_line", "credit_line"})
MONEY_KEYS_OR_OBJECTS = frozenset({"reported"})  # a figure, or an object holding one


def _no_float(text: str) -> NoReturn:
    raise AssertionError(f"a JSON float in the answer: {text}")


def _members(document: object) -> Iterator[tuple[str, object]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield key, value
            yield from _members(value)
    elif isinstance(document, list):
        for item in document:
            yield from _members(item)


def assert_serialises_with_money_as_text(result: Interpreted) -> None:
    """Counterparties and warnings serialise as JSON, every money figure a decimal string."""
    for warning in result.warnings:
        warning.model_dump_json()
    for counterparty in result.counterparties:
        document = json.loads(encode_json(counterparty), parse_float=_no_float)
        for key, value in _members(document):
            if value is None or (key in MONEY_KEYS_OR_OBJECTS and isinstance(value, dict)):
                continue
            if key in MONEY_KEYS | MONEY_KEYS_OR_OBJECTS:
                assert isinstance(value, str), (key, value)
                assert MONEY.fullmatch(value), (key, value)


Figures = tuple[str, Side, Meaning, str | None, str | None]


def figures(result: Interpreted) -> dict[str, Figures]:
    """Every account's interpreted figures, written out so 1.0 and 1.00 differ."""
    found: dict[str, Figures] = {}
    for counterparty in result.counterparties:
        for account in counterparty.accounts:
            position = account.position
            assert position is not None, f"{account.id} lost its position"
            available = None if position.available is None else str(position.available)
            found[account.id] = (
                str(position.amount),
                position.side,
                position.meaning,
                position.balance_type,
                available,
            )
    return found


# --- Finqware -------------------------------------------------------------------------------

CURRENT = ["InterimBooked", "ClosingBooked", "OpeningBooked", "PreviouslyClosedBooked"]
FALLBACK = ["Expected", "InterimAvailable", "ClosingAvailable"]
ISO_TYPES = [
    *CURRENT,
    *FALLBACK,
    "OpeningAvailable",
    "ForwardAvailable",
    "InterimCleared",
    "Information",
]
ACCOUNT_KEYS = frozenset({"id", "servicer_id", "servicer_name", "timestamp", "data"})
ACCOUNT_DATA_KEYS = frozenset(
    {
        "name",
        "nickname",
        "currency",
        "account_type",
        "account_sub_type",
        "account_schemes",
        "balances",
    }
)
FIELD_CODES = frozenset({UNREADABLE_FIELD, CREDIT_LINE_OTHER_CURRENCY})

account_refs = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=6)
finqware_amounts = st.integers(0, 5).flatmap(
    lambda places: st.decimals(min_value=0, max_value=10**9, places=places).map(
        lambda amount: format(amount, "f")
    )
)
naive_timestamps = st.sampled_from(
    ["2026-05-04T07:31:51.689168", "2026-05-03T23:00:00", "2026-05-04T11:59:59"]
)
aware_timestamps = st.sampled_from(
    ["2026-05-04T08:00:00Z", "2026-05-04T10:00:00+02:00", "2026-05-01T00:00:00.5+00:00"]
)
dates = st.sampled_from(["2026-05-04", "2026-05-01", "2026-04-30"])


@dataclass(frozen=True)
class FinqwareAnswers:
    """`/balances/get` and `/accounts/get` as sent, the same with every optional field left
    out, and each account's mangled fields (`balance.<path>` and `account.<path>`)."""

    balances: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    clean_balances: list[dict[str, Any]]
    clean_accounts: list[dict[str, Any]]
    mangled: dict[str, set[str]]


@st.composite
def finqware_answers(draw: st.DrawFn) -> FinqwareAnswers:
    refs = draw(st.lists(account_refs, min_size=1, max_size=3, unique=True))
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    account_pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    mangled: dict[str, set[str]] = {}
    for ref in refs:
        fields = mangled.setdefault(ref, set())
        currency = draw(st.sampled_from(["RON", "EUR", "USD"]))
        # Distinct types, so no time or date can change which entry is picked; the first
        # one of a current or fallback type, without the line, so every account has a pick.
        first = draw(st.sampled_from([*CURRENT, *FALLBACK]))
        others = draw(
            st.lists(st.sampled_from([t for t in ISO_TYPES if t != first]), unique=True, max_size=4)
        )
        for balance_type in draw(st.permutations([first, *others])):
            required = {
                "amount": draw(finqware_amounts),
                "credit_debit_indicator": draw(st.sampled_from(["credit", "debit"])),
                "credit_limit_included": balance_type != first and draw(st.booleans()),
                "currency": currency,
                "type": balance_type,
            }
            valid_top = {"id": f"{ref}-{balance_type}", "timestamp": draw(naive_timestamps)}
            valid_data = {
                "credit_line": draw(st.none() | finqware_amounts),
                "native_date": draw(st.none() | dates),
                "native_timestamp": draw(st.none() | aware_timestamps),
            }
            top = optional_fields(draw, valid_top, BALANCE_KEYS, "balance.", fields)
            data = optional_fields(draw, valid_data, BALANCE_DATA_KEYS, "balance.data.", fields)
            sent = {"account_id": ref, **top, "data": {**required, **data}}
            pairs.append((sent, {"account_id": ref, "data": required}))
        valid_account = {
            "servicer_id": "bt",
            "servicer_name": "Banca Transilvania",
            "timestamp": "2021-02-01T13:14:52Z",
        }
        valid_account_data = {
            "name": f"Cont {ref}",
            "nickname": "",
            "currency": currency,
            "account_type": "Business",
            "account_sub_type": "CurrentAccount",
            "account_schemes": [
                {"scheme_name": "IBAN", "identification": "RO49AAAA1B31007593840000"}
            ],
            "balances": [],
        }
        top = optional_fields(draw, valid_account, ACCOUNT_KEYS, "account.", fields)
        data = optional_fields(draw, valid_account_data, ACCOUNT_DATA_KEYS, "account.data.", fields)
        account_pairs.append(({"id": ref, **top, "data": data}, {"id": ref}))
    pairs = draw(st.permutations(pairs))
    account_pairs = draw(st.permutations(account_pairs))
    return FinqwareAnswers(
        balances=[sent for sent, _ in pairs],
        accounts=[sent for sent, _ in account_pairs],
        clean_balances=[clean for _, clean in pairs],
        clean_accounts=[clean for _, clean in account_pairs],
        mangled=mangled,
    )


async def _read_finqware(balances: bytes, accounts: bytes) -> Interpreted:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = balances if request.url.path.endswith("/balances/get") else accounts
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    transport = httpx2.MockTransport(handler)
    async with httpx2.AsyncClient(
        transport=transport, base_url="https://api.finqware.test/v1/"
    ) as http:
        client = FinqwareClient(http, client_id="tenant", client_secret=SecretStr("secret"))
        read_balances = await client.get_balances(CONSENT)
        read_accounts = await client.get_accounts(CONSENT)
    assert not read_balances.rejected
    assert not read_accounts.rejected
    return interpret_finqware(
        key=KEY,
        label=None,
        accounts=read_accounts,
        balances=read_balances,
        fetched_at=FETCHED_AT,
        orders=BalanceOrders.default(),
        rejected_accounts=read_accounts.rejected,
        rejected_balances=read_balances.rejected,
    )


def connected(reading: Coroutine[Any, Any, Interpreted]) -> Interpreted:
    """What a reading through the real adapter and interpretation interpreted; a failed
    connection fails the test."""
    try:
        return asyncio.run(reading)
    except UpstreamError as exc:
        pytest.fail(f"the connection failed: {exc!r}")


def read_finqware(balances: object, accounts: object) -> Interpreted:
    """Both answers through the real adapter and interpretation; a failed connection fails."""
    return connected(_read_finqware(to_json(balances).encode(), to_json(accounts).encode()))


@READING
@given(answers=finqware_answers())
def test_mangled_optional_finqware_fields_never_change_a_position(
    answers: FinqwareAnswers,
) -> None:
    note(f"balances: {to_json(answers.balances)}")
    note(f"accounts: {to_json(answers.accounts)}")
    clean = read_finqware(answers.clean_balances, answers.clean_accounts)
    assert clean.warnings == ()
    result = read_finqware(answers.balances, answers.accounts)

    expected_ids = {f"finqware:{ref}" for ref in answers.mangled}
    assert set(figures(clean)) == expected_ids
    assert figures(result) == figures(clean)
    assert_serialises_with_money_as_text(result)

    for warning in result.warnings:
        assert warning.code in FIELD_CODES, warning
        assert warning.account_id in expected_ids, warning
    for ref, fields in answers.mangled.items():
        mine = [w for w in result.warnings if w.account_id == f"finqware:{ref}"]
        field_warnings = [w for w in mine if w.code == UNREADABLE_FIELD]
        assert len(field_warnings) <= len(fields), (field_warnings, fields)
        # At most one more: a readable line in another currency, only where lines were mangled.
        other_currency = len(mine) - len(field_warnings)
        assert other_currency <= ("balance.data.credit_line" in fields)


def assert_kept_without_line(result: Interpreted) -> None:
    """acc-1 keeps its position and amount, without a credit line, and one warning says why."""
    [counterparty] = result.counterparties
    [account] = counterparty.accounts
    assert account.id == "finqware:acc-1"
    assert account.position is not None
    assert account.position.amount == Decimal("210.23001")
    assert account.position.credit_line is None
    assert account.position.balances[0].credit_line is None
    [warning] = result.warnings
    assert warning.code == UNREADABLE_FIELD
    assert warning.account_id == "finqware:acc-1"
    assert "credit_line" in warning.message


@pytest.mark.parametrize("credit_line", [{"amount": {"value": "x"}}, {"weird": 1}])
def test_a_credit_line_of_an_unknown_shape_costs_only_the_line(credit_line: object) -> None:
    assert_kept_without_line(read_finqware([balance_entry(credit_line=credit_line)], []))


@pytest.mark.parametrize("credit_line", ["1e999999999", Decimal("1E+1000000")])
def test_a_credit_line_beyond_decimal_range_costs_only_the_line(credit_line: object) -> None:
    # Read as a finite decimal, it overflowed when summed (decimal.Overflow escaped).
    assert_kept_without_line(read_finqware([balance_entry(credit_line=credit_line)], []))


def test_text_with_a_lone_surrogate_still_serialises() -> None:
    # JSON text can escape a lone surrogate (\ud800); UTF-8 cannot encode one.
    entry = {**balance_entry(), "id": "\ud800"}
    account = {"id": "acc-1", "servicer_name": "bank \ud800", "data": {"name": "a\udfffb"}}
    result = read_finqware([entry], [account])
    assert_serialises_with_money_as_text(result)
    assert {w.code for w in result.warnings} <= FIELD_CODES


def test_an_integer_too_long_for_python_in_an_unknown_key_does_not_fail_the_connection() -> None:
    # Python refuses to decode integers of more than 4300 digits by default.
    entry = {**balance_entry(), "x_extra": RawNumber("1" + "0" * 4300)}
    result = read_finqware([entry], [])
    [counterparty] = result.counterparties
    assert counterparty.accounts[0].position is not None


# --- FinSync --------------------------------------------------------------------------------

CLIENT_KEYS = frozenset(
    {"id", "name", "description", "company_id", "type", "accounts", "created_at", "updated_at"}
)
FINSYNC_ACCOUNT_KEYS = frozenset(
    {"id", "name", "currency_name", "client_id", "balance", "created_at", "updated_at"}
)
finsync_balances: st.SearchStrategy[object] = st.integers(-(10**15), 10**15) | st.integers(
    0, 2
).flatmap(lambda places: st.decimals(min_value=-(10**12), max_value=10**12, places=places))


@dataclass(frozen=True)
class FinsyncAnswers:
    """`/api/clients` as sent and with every optional field left out, and each client's
    mangled fields (its own and its accounts')."""

    body: object
    clean: object
    clients: list[dict[str, Any]]
    mangled: dict[int, set[str]]


def _envelope(clients: list[dict[str, Any]], shape: str) -> object:
    if shape == "bare":
        return clients
    count = len(clients)
    if shape == "camel":
        pagination = {"page": 1, "pageSize": 100, "total": count, "totalPages": 1}
    else:
        pagination = {"page": 1, "page_size": 100, "total": count, "total_pages": 1}
    return {"data": clients, "pagination": pagination}


@st.composite
def finsync_answers(draw: st.DrawFn) -> FinsyncAnswers:
    client_ids = draw(st.lists(st.integers(1, 10**6), min_size=1, max_size=4, unique=True))
    account_counts = [draw(st.integers(0, 3)) for _ in client_ids]
    account_ids = iter(
        draw(
            st.lists(
                st.integers(1, 10**9),
                min_size=sum(account_counts),
                max_size=sum(account_counts),
                unique=True,
            )
        )
    )
    sent: list[dict[str, Any]] = []
    clean: list[dict[str, Any]] = []
    mangled: dict[int, set[str]] = {}
    for client_id, count in zip(client_ids, account_counts, strict=True):
        fields = mangled.setdefault(client_id, set())
        accounts: list[dict[str, Any]] = []
        clean_accounts: list[dict[str, Any]] = []
        for _ in range(count):
            account_id = next(account_ids)
            required = {
                "id": account_id,
                "currency_name": draw(st.sampled_from(["ARS", "USD", "USDT"])),
                "balance": draw(finsync_balances),
            }
            valid = {
                "name": "Caja",
                "client_id": client_id,
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2026-05-04T10:00:00Z",
            }
            path = f"account {account_id}."
            optional = optional_fields(draw, valid, FINSYNC_ACCOUNT_KEYS, path, fields)
            accounts.append({**required, **optional})
            clean_accounts.append(required)
        client_type = draw(st.sampled_from([0, 1]))
        valid_client = {
            "name": f"Client {client_id}",
            "description": draw(st.none() | st.just("a supplier")),
            "company_id": 7,
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2026-05-04T10:00:00Z",
        }
        optional = optional_fields(draw, valid_client, CLIENT_KEYS, "", fields)
        sent.append({"id": client_id, "type": client_type, **optional, "accounts": accounts})
        clean.append({"id": client_id, "type": client_type, "accounts": clean_accounts})
    shape = draw(st.sampled_from(["bare", "camel", "snake"]))
    return FinsyncAnswers(
        body=_envelope(sent, shape),
        clean=_envelope(clean, shape),
        clients=sent,
        mangled=mangled,
    )


async def _read_finsync(body: bytes) -> Interpreted:
    def handler(request: httpx2.Request) -> httpx2.Response:
        content = body if request.url.params.get("page") == "1" else b"[]"
        return httpx2.Response(200, content=content, headers={"content-type": "application/json"})

    transport = httpx2.MockTransport(handler)
    async with httpx2.AsyncClient(transport=transport, base_url="https://finsync.test/") as http:
        clients = await FinsyncClient(http, api_key=SecretStr("key")).list_clients()
    assert not clients.rejected
    return interpret_finsync(clients, fetched_at=FETCHED_AT, rejected=clients.rejected)


def read_finsync(body: object) -> Interpreted:
    """The answer through the real adapter and interpretation; a failed connection fails."""
    return connected(_read_finsync(to_json(body).encode()))


@READING
@given(answers=finsync_answers())
def test_mangled_optional_finsync_fields_never_change_a_client_or_its_accounts(
    answers: FinsyncAnswers,
) -> None:
    note(f"clients: {to_json(answers.body)}")
    clean = read_finsync(answers.clean)
    result = read_finsync(answers.body)

    expected = {f"finsync:{client['id']}" for client in answers.clients}
    assert {counterparty.id for counterparty in result.counterparties} == expected
    accounts = {f"finsync:{a['id']}" for client in answers.clients for a in client["accounts"]}
    assert set(figures(clean)) == accounts
    assert figures(result) == figures(clean)
    assert_serialises_with_money_as_text(result)

    names = {counterparty.id: counterparty.name for counterparty in result.counterparties}
    for client in answers.clients:
        fallback = f"FinSync client {client['id']}"
        shown = names[f"finsync:{client['id']}"]
        assert reads_as(client.get("name"), shown, fallback), (client.get("name"), shown)

    for warning in result.warnings:
        assert warning.code == UNREADABLE_FIELD, warning
        assert warning.counterparty_id in expected, warning
    for client_id, fields in answers.mangled.items():
        mine = [w for w in result.warnings if w.counterparty_id == f"finsync:{client_id}"]
        assert len(mine) <= len(fields), (mine, fields)


def test_a_lone_surrogate_in_a_client_name_still_serialises() -> None:
    body = [{"id": 1, "type": 0, "name": "\ud800", "accounts": []}]
    result = read_finsync(body)
    assert [counterparty.id for counterparty in result.counterparties] == ["finsync:1"]
    assert_serialises_with_money_as_text(result)


def test_an_integer_too_long_for_python_in_an_optional_field_does_not_fail_the_connection() -> None:
    body = [{"id": 1, "type": 0, "company_id": RawNumber("1" + "0" * 4300), "accounts": []}]
    result = read_finsync(body)
    assert [counterparty.id for counterparty in result.counterparties] == ["finsync:1"]


def test_a_huge_exponent_in_an_integer_is_refused_before_python_builds_it() -> None:
    # 1E+999999999 is 12 bytes of JSON; building the int it says would take hours (the time
    # grows with the square of the digits). The reader refuses it by its exponent alone, so
    # the field is unreadable (no timing here: the exponent below would take minutes if the
    # bound were lost, which the suite's time-out would catch).
    huge = Decimal("1E+999999999")
    account = {"id": 2, "currency_name": "ARS", "balance": 1, "client_id": huge}
    body = [{"id": 1, "type": 0, "company_id": huge, "accounts": [account]}]
    result = read_finsync(body)
    assert list(figures(result)) == ["finsync:2"]
    record = FinsyncClientRecord.model_validate({"id": 1, "company_id": huge, "type": huge})
    assert [item.field for item in record.unreadable] == ["company_id"]
    assert record.type == "1E+999999999"  # not an integer type: left out, never guessed
