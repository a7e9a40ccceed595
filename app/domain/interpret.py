"""Interpretation: FinSync and Finqware wire records to counterparties with signed positions.

The rules are API.md's "Interpretation" table; anything the upstream sends that the table
does not cover is left out with a warning, never guessed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from app.domain.counterparties import normalize_text
from app.domain.models import (
    CURRENCY_PATTERN,
    Account,
    BalanceEntry,
    Counterparty,
    Kind,
    Meaning,
    Position,
    ReportedFigure,
    ResponseWarning,
    Side,
    Source,
)
from app.domain.money import (
    check_amount,
    negate,
    round_upstream_number,
    sum_exact,
    without_negative_zero,
    zero_for,
)
from app.settings import (
    DEFAULT_AVAILABLE_ORDER,
    DEFAULT_CURRENT_FALLBACK_ORDER,
    DEFAULT_CURRENT_ORDER,
    Settings,
)
from app.upstreams.finqware import FinqwareAccount, FinqwareBalance, FinqwareBalanceData
from app.upstreams.finsync import FinsyncAccount, FinsyncClientRecord
from app.upstreams.reading import Rejected, Unreadable

# Stable warning codes (ResponseWarning.code): callers may switch on them.
UNKNOWN_CLIENT_TYPE = "unknown_client_type"
UNKNOWN_CREDIT_DEBIT_INDICATOR = "unknown_credit_debit_indicator"
INVALID_AMOUNT = "invalid_amount"
INVALID_CURRENCY = "invalid_currency"
NO_USABLE_BALANCE = "no_usable_balance"
ACCOUNT_DETAILS_UNAVAILABLE = "account_details_unavailable"
INVALID_BALANCE_TYPE = "invalid_balance_type"
UNREADABLE_FIELD = "unreadable_field"
UNREADABLE_RECORD = "unreadable_record"
CREDIT_LINE_OTHER_CURRENCY = "credit_line_other_currency"
CONSENT_EXPIRING = "consent_expiring"

FINSYNC_SOURCE = "finsync"

_CURRENCY = re.compile(CURRENCY_PATTERN)
_FINSYNC_KINDS: dict[int, Kind] = {0: Kind.internal, 1: Kind.external}
_CREDIT = "credit"
_DEBIT = "debit"
# Upstream text quoted in a warning is cut short: a warning is a pointer, not a dump.
_QUOTE_CHARS = 40


@dataclass(frozen=True)
class BalanceOrders:
    """Which Finqware balance types give a position's `amount` and `available`, best first."""

    current: tuple[str, ...]
    current_fallback: tuple[str, ...]
    available: tuple[str, ...]

    @classmethod
    def default(cls) -> BalanceOrders:
        return cls(
            current=DEFAULT_CURRENT_ORDER,
            current_fallback=DEFAULT_CURRENT_FALLBACK_ORDER,
            available=DEFAULT_AVAILABLE_ORDER,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> BalanceOrders:
        return cls(
            current=tuple(settings.current_balance_types),
            current_fallback=tuple(settings.current_fallback_balance_types),
            available=tuple(settings.available_balance_types),
        )

    def rank(self, balance_type: str) -> int:
        """Place of a type in the orders combined; types in no order sort last."""
        combined = list(dict.fromkeys(self.current + self.current_fallback + self.available))
        return combined.index(balance_type) if balance_type in combined else len(combined)


@dataclass(frozen=True)
class Interpreted:
    """Counterparties read from one upstream answer, and what could not be interpreted."""

    counterparties: tuple[Counterparty, ...]
    warnings: tuple[ResponseWarning, ...]

    def with_warning(self, warning: ResponseWarning) -> Interpreted:
        return Interpreted(self.counterparties, (*self.warnings, warning))


# --- shared helpers -----------------------------------------------------------------------


def as_utc(value: datetime) -> datetime:
    """Aware UTC datetime; a naive one is taken to be UTC already (as both upstreams mean)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def side_of(amount: Decimal) -> Side:
    if amount > 0:
        return Side.asset
    if amount < 0:
        return Side.liability
    return Side.flat


def normalize_currency(raw: str | None) -> str | None:
    """The code as tesoro publishes it (trimmed, upper case), or None when it is not a code."""
    if raw is None:
        return None
    code = raw.strip().upper()
    return code if _CURRENCY.fullmatch(code) else None


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


def _first_text(*candidates: str | None) -> str | None:
    for candidate in candidates:
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def _cut(text: str) -> str:
    return text if len(text) <= 2 * _QUOTE_CHARS else text[: 2 * _QUOTE_CHARS - 3] + "..."


def _unreadable_named(unreadable: Iterable[Unreadable], field: str) -> bool:
    return any(item.field == field for item in unreadable)


def _sent(unreadable: Iterable[Unreadable], field: str) -> str | None:
    """What was sent for a field that could not be read, quoted; None when it was read."""
    return next((item.sent for item in unreadable if item.field == field), None)


def _field_warnings(
    what: str,
    unreadable: Iterable[Unreadable],
    shown: frozenset[str],
    *,
    source: str,
    counterparty_id: str | None,
    account_id: str | None = None,
) -> list[ResponseWarning]:
    """One `unreadable_field` warning per optional field tesoro shows that could not be read."""
    return [
        ResponseWarning(
            code=UNREADABLE_FIELD,
            message=f"{what} field {item.field!r} could not be read (sent {item.sent}); "
            "it is left empty",
            source=source,
            counterparty_id=counterparty_id,
            account_id=account_id,
        )
        for item in unreadable
        if item.field in shown
    ]


def _reported(amount: Decimal) -> Decimal:
    # The figure as received, except that a -0 would read as a liability in JSON.
    return amount.copy_abs() if amount.is_zero() else amount


def _account_order(account: Account) -> tuple[str, str, str]:
    return (normalize_text(account.name), account.id, account.currency)


# --- FinSync ------------------------------------------------------------------------------

# FinSync fields tesoro shows or uses, besides the ones interpretation needs (which have
# warnings of their own): one that cannot be read is named in an `unreadable_field` warning.
# Fields tesoro does not use (company_id, created_at, client_id) are ignored when unreadable.
_FINSYNC_CLIENT_FIELDS_SHOWN = frozenset({"name", "description", "accounts"})
_FINSYNC_ACCOUNT_FIELDS_SHOWN = frozenset({"name", "updated_at"})


def interpret_finsync(
    clients: Sequence[FinsyncClientRecord],
    fetched_at: datetime,
    *,
    rejected: Sequence[Rejected] = (),
) -> Interpreted:
    """Every FinSync client as a counterparty, in the order given; each client FinSync sent
    without a readable id (`rejected`) is named in an `unreadable_record` warning."""
    counterparties: list[Counterparty] = []
    warnings: list[ResponseWarning] = [
        ResponseWarning(
            code=UNREADABLE_RECORD,
            message=f"a FinSync client could not be read ({_cut(record.reason)}); it is left out",
            source=FINSYNC_SOURCE,
        )
        for record in rejected
    ]
    for client in clients:
        one = interpret_finsync_client(client, fetched_at)
        counterparties.extend(one.counterparties)
        warnings.extend(one.warnings)
    return Interpreted(tuple(counterparties), tuple(warnings))


def interpret_finsync_client(client: FinsyncClientRecord, fetched_at: datetime) -> Interpreted:
    """One FinSync client: no counterparty, and a warning, when its type is not 0 or 1."""
    counterparty_id = f"finsync:{client.id}"
    kind = _FINSYNC_KINDS.get(client.type) if isinstance(client.type, int) else None
    if kind is None:
        shown = client.type if isinstance(client.type, int) else _quote(client.type)
        warning = ResponseWarning(
            code=UNKNOWN_CLIENT_TYPE,
            message=f"FinSync client type {shown} is neither 0 (internal) nor "
            "1 (external); the client is left out",
            source=FINSYNC_SOURCE,
            counterparty_id=counterparty_id,
        )
        return Interpreted((), (warning,))
    fetched = as_utc(fetched_at)
    warnings: list[ResponseWarning] = []
    name = _first_text(client.name)
    if name is None:
        name = f"FinSync client {client.id}"
        if not _unreadable_named(client.unreadable, "name"):
            warnings.append(
                ResponseWarning(
                    code=UNREADABLE_FIELD,
                    message=f"FinSync sent no name for this client; it is shown as {name!r}",
                    source=FINSYNC_SOURCE,
                    counterparty_id=counterparty_id,
                )
            )
    warnings.extend(
        _field_warnings(
            "FinSync client",
            client.unreadable,
            _FINSYNC_CLIENT_FIELDS_SHOWN,
            source=FINSYNC_SOURCE,
            counterparty_id=counterparty_id,
        )
    )
    warnings.extend(
        ResponseWarning(
            code=UNREADABLE_RECORD,
            message=f"an account of this FinSync client could not be read "
            f"({_cut(rejected.reason)}); it is left out",
            source=FINSYNC_SOURCE,
            counterparty_id=counterparty_id,
        )
        for rejected in client.accounts.rejected
    )
    accounts: list[Account] = []
    for record in client.accounts.records:
        account = _finsync_account(client, counterparty_id, name, kind, record, fetched, warnings)
        if account is not None:
            accounts.append(account)
    counterparty = Counterparty(
        id=counterparty_id,
        source=Source.finsync,
        kind=kind,
        name=name,
        description=_first_text(client.description),
        accounts=sorted(accounts, key=_account_order),
    )
    return Interpreted((counterparty,), tuple(warnings))


def finsync_signed(kind: Kind, rounded: Decimal, currency: str) -> tuple[Decimal, Meaning]:
    """API.md's FinSync rows: the company's view of a client balance already rounded."""
    if rounded.is_zero():
        return zero_for(currency), Meaning.zero
    if kind is Kind.internal:
        return rounded, Meaning.cash if rounded > 0 else Meaning.overdraft
    # External: a positive balance is what the company owes the client.
    return negate(rounded, currency), Meaning.payable if rounded > 0 else Meaning.receivable


def _finsync_account(
    client: FinsyncClientRecord,
    counterparty_id: str,
    counterparty_name: str,
    kind: Kind,
    record: FinsyncAccount,
    fetched_at: datetime,
    warnings: list[ResponseWarning],
) -> Account | None:
    account_id = f"finsync:{record.id}"
    warnings.extend(
        _field_warnings(
            "FinSync account",
            record.unreadable,
            _FINSYNC_ACCOUNT_FIELDS_SHOWN,
            source=FINSYNC_SOURCE,
            counterparty_id=counterparty_id,
            account_id=account_id,
        )
    )
    currency = normalize_currency(record.currency_name)
    if currency is None:
        # Account.currency must be a code, so an account without one cannot be listed.
        sent = _sent(record.unreadable, "currency_name") or _quote(record.currency_name)
        warnings.append(
            ResponseWarning(
                code=INVALID_CURRENCY,
                message=f"FinSync currency {sent} is not a currency code; the account is left out",
                source=FINSYNC_SOURCE,
                counterparty_id=counterparty_id,
                account_id=account_id,
            )
        )
        return None
    name = _first_text(record.name) or currency
    balance = record.balance
    try:
        rounded = round_upstream_number(balance, currency) if balance is not None else None
    except ValueError:
        rounded = None
    if balance is None or rounded is None:
        sent = _sent(record.unreadable, "balance") or _quote(balance)
        warnings.append(
            ResponseWarning(
                code=INVALID_AMOUNT,
                message=f"FinSync balance {sent} is not a usable amount",
                source=FINSYNC_SOURCE,
                counterparty_id=counterparty_id,
                account_id=account_id,
            )
        )
        return Account(id=account_id, name=name, currency=currency, position=None)
    amount, meaning = finsync_signed(kind, rounded, currency)
    assert isinstance(client.type, int)  # a known kind is 0 or 1
    position = Position(
        counterparty_id=counterparty_id,
        counterparty_name=counterparty_name,
        kind=kind,
        source=Source.finsync,
        account_id=account_id,
        account_name=name,
        currency=currency,
        amount=amount,
        side=side_of(amount),
        meaning=meaning,
        reported=ReportedFigure(amount=_reported(balance), client_type=client.type),
        as_of=record.updated_at,
        fetched_at=fetched_at,
    )
    return Account(id=account_id, name=name, currency=currency, position=position)


# --- Finqware -----------------------------------------------------------------------------

# Finqware fields tesoro shows or uses besides the ones interpretation needs (amount,
# indicator, currency and type have warnings of their own); one that cannot be read is named
# in one `unreadable_field` warning per account. Fields tesoro does not use (servicer_id,
# account_type, account_sub_type, the accounts' timestamp and balances) are ignored.
_FINQWARE_BALANCE_FIELDS_SHOWN = frozenset(
    {
        "id",
        "timestamp",
        "data",
        "data.credit_line",
        "data.credit_limit_included",
        "data.native_date",
        "data.native_timestamp",
    }
)
_FINQWARE_ACCOUNT_FIELDS_SHOWN = frozenset(
    {"servicer_name", "data", "data.name", "data.nickname", "data.currency", "data.account_schemes"}
)
# UK Open Banking's `Available` line type is the unused part of a line, not a line.
_NOT_A_LINE = "available"
_EPOCH = datetime.min.replace(tzinfo=UTC)


def credit_debit(indicator: str | None) -> str | None:
    """`credit` or `debit`, ignoring case and surrounding spaces; None for anything else."""
    if indicator is None:
        return None
    folded = indicator.strip().casefold()
    return folded if folded in (_CREDIT, _DEBIT) else None


def finqware_signed(amount: Decimal, indicator: str, currency: str) -> tuple[Decimal, Meaning]:
    """API.md's Finqware rows for a non-negative amount and a known indicator.

    The amount is kept exactly as sent (no rounding); only a zero becomes zero_for(currency).
    """
    direction = credit_debit(indicator)
    if direction is None or amount < 0:
        raise ValueError("only a non-negative amount with credit or debit can be signed")
    if amount.is_zero():
        return zero_for(currency), Meaning.zero
    if direction == _CREDIT:
        return amount, Meaning.cash
    return negate(amount, currency), Meaning.overdraft


@dataclass(frozen=True)
class _Entry:
    """A balance entry that passed every check: what interpretation reads of it."""

    source: FinqwareBalance
    amount: Decimal
    indicator: str
    type: str
    included: bool  # includes the credit line, or does not say readably: never picked
    queried_at: datetime  # Finqware's timestamp, else when tesoro fetched

    @property
    def data(self) -> FinqwareBalanceData:
        return self.source.data


def balance_as_of(balance: FinqwareBalance, fetched_at: datetime) -> datetime:
    """When the bank says the figure was true: its time, else its date at 00:00 UTC, else
    when Finqware asked the bank, else when tesoro fetched it."""
    if balance.data.native_timestamp is not None:
        return balance.data.native_timestamp
    if balance.data.native_date is not None:
        return datetime.combine(balance.data.native_date, time(0), tzinfo=UTC)
    return balance.timestamp or fetched_at


def _recency(entry: _Entry) -> tuple[datetime, date, datetime, str]:
    # Latest wins: the bank's own time first; the id only makes ties deterministic.
    return (
        balance_as_of(entry.source, _EPOCH),
        entry.data.native_date or date.min,
        entry.source.timestamp or _EPOCH,
        entry.source.id or "",
    )


def _latest_of_type(
    entries: Iterable[_Entry], balance_type: str, *, included: bool
) -> _Entry | None:
    candidates = [e for e in entries if e.type == balance_type and e.included is included]
    return max(candidates, key=_recency) if candidates else None


def _first_in_order(
    entries: Sequence[_Entry], order: Iterable[str], *, included: bool = False
) -> _Entry | None:
    for balance_type in order:
        found = _latest_of_type(entries, balance_type, included=included)
        if found is not None:
            return found
    return None


def _line_in(entry: FinqwareBalance, currency: str) -> tuple[Decimal | None, bool]:
    """The entry's credit line in `currency` (the sum of its lines), and whether it sent
    lines in another currency only."""
    lines = entry.data.credit_line
    if not lines:
        return None, False
    usable = [
        line
        for line in lines
        if (line.type or "").casefold() != _NOT_A_LINE
        and (line.currency is None or line.currency == currency)
    ]
    if not usable:
        other = any(line.currency not in (None, currency) for line in lines)
        return None, other
    total = sum((line.amount for line in usable), Decimal(0))
    return without_negative_zero(total, currency), False


def _credit_line(picked: _Entry, entries: Sequence[_Entry], currency: str) -> Decimal | None:
    with_line = [e for e in entries if _line_in(e.source, currency)[0] is not None]
    if not with_line:
        return None
    # The picked entry's own line, else one of the picked type, else the latest of any type.
    best = max(
        with_line,
        key=lambda entry: (entry is picked, entry.type == picked.type, _recency(entry)),
    )
    return _line_in(best.source, currency)[0]


@dataclass(frozen=True)
class _Connection:
    counterparty_id: str
    counterparty_name: str
    source_name: str
    fetched_at: datetime
    orders: BalanceOrders

    def warning(self, code: str, message: str, account_id: str | None) -> ResponseWarning:
        return ResponseWarning(
            code=code,
            message=message,
            source=self.source_name,
            counterparty_id=self.counterparty_id,
            account_id=account_id,
        )


def finqware_placeholder(key: str, label: str | None) -> Counterparty:
    """A bank connection that could not be read: still listed, named, with no accounts."""
    return Counterparty(
        id=f"finqware:{key}",
        source=Source.finqware,
        kind=Kind.internal,
        name=_first_text(label) or key,
        description=None,
        accounts=[],
    )


def interpret_finqware(
    key: str,
    label: str | None,
    accounts: Sequence[FinqwareAccount],
    balances: Sequence[FinqwareBalance],
    fetched_at: datetime,
    orders: BalanceOrders,
    *,
    rejected_accounts: Sequence[Rejected] = (),
    rejected_balances: Sequence[Rejected] = (),
) -> Interpreted:
    """One Finqware consent as one internal counterparty, with one account per
    (bank account, currency) of its balances; records Finqware sent without a readable id
    (`rejected_*`) are named in `unreadable_record` warnings."""
    bank_name = _first_text(*(account.servicer_name for account in accounts))
    own_label = _first_text(label)
    connection = _Connection(
        counterparty_id=f"finqware:{key}",
        counterparty_name=own_label or bank_name or key,
        # Warnings point at the connection the way `sources` names it.
        source_name=f"finqware:{key}",
        fetched_at=as_utc(fetched_at),
        orders=orders,
    )
    warnings: list[ResponseWarning] = [
        connection.warning(
            UNREADABLE_RECORD,
            f"a Finqware {what} could not be read ({_cut(rejected.reason)}); it is left out",
            None,
        )
        for what, records in (("balance entry", rejected_balances), ("account", rejected_accounts))
        for rejected in records
    ]

    known: dict[str, FinqwareAccount] = {}
    for account in accounts:
        known.setdefault(account.id, account)
    groups: dict[str, dict[str, list[FinqwareBalance]]] = defaultdict(dict)
    with_balances: set[str] = set()
    bad_currencies: dict[str, str] = {}
    for balance in balances:
        with_balances.add(balance.account_id)
        currency = normalize_currency(balance.data.currency)
        if currency is None:
            sent = _sent(balance.unreadable, "data.currency") or _quote(balance.data.currency)
            bad_currencies.setdefault(balance.account_id, sent)
            continue
        groups[balance.account_id].setdefault(currency, []).append(balance)
    for account_ref, sent in sorted(bad_currencies.items()):
        warnings.append(
            connection.warning(
                INVALID_CURRENCY,
                f"Finqware currency {sent} is not a currency code; those balances are left out",
                f"finqware:{account_ref}",
            )
        )

    # Accounts only balances/get knows of still count; warnings follow this order, the
    # accounts themselves are sorted by name below.
    account_refs = list(dict.fromkeys([*known, *(balance.account_id for balance in balances)]))
    out: list[Account] = []
    for account_ref in account_refs:
        account_id = f"finqware:{account_ref}"
        listed = known.get(account_ref)
        if listed is not None:
            warnings.extend(
                _field_warnings(
                    "Finqware account",
                    listed.unreadable,
                    _FINQWARE_ACCOUNT_FIELDS_SHOWN,
                    source=connection.source_name,
                    counterparty_id=connection.counterparty_id,
                    account_id=account_id,
                )
            )
        name = _finqware_account_name(listed, account_ref)
        by_currency = groups.get(account_ref, {})
        if not by_currency:
            if account_ref not in with_balances:
                warnings.append(
                    connection.warning(
                        NO_USABLE_BALANCE, "Finqware sent no balance for this account", account_id
                    )
                )
            currency = normalize_currency(listed.data.currency) if listed is not None else None
            if currency is not None:
                out.append(Account(id=account_id, name=name, currency=currency, position=None))
            continue
        for currency, records in sorted(by_currency.items()):
            position = _finqware_position(connection, account_id, name, currency, records, warnings)
            out.append(Account(id=account_id, name=name, currency=currency, position=position))

    counterparty = Counterparty(
        id=connection.counterparty_id,
        source=Source.finqware,
        kind=Kind.internal,
        name=connection.counterparty_name,
        # The bank's name describes a labelled connection, unless the label already says it.
        description=bank_name if own_label is not None and bank_name != own_label else None,
        accounts=sorted(out, key=_account_order),
    )
    return Interpreted((counterparty,), tuple(warnings))


def _finqware_account_name(account: FinqwareAccount | None, account_ref: str) -> str:
    if account is None:
        return account_ref
    data = account.data
    return _first_text(data.name, data.nickname, data.iban) or account_ref


def _field_problems(
    connection: _Connection, account_id: str, records: Sequence[FinqwareBalance]
) -> list[ResponseWarning]:
    """One warning per optional field that could not be read on some of the account's
    entries (with how many and the first value sent)."""
    seen: dict[str, list[str]] = {}
    for record in records:
        for item in record.unreadable:
            if item.field in _FINQWARE_BALANCE_FIELDS_SHOWN:
                seen.setdefault(item.field, []).append(item.sent)
    problems: list[ResponseWarning] = []
    for field, sent in seen.items():
        entries = "entry" if len(sent) == 1 else f"{len(sent)} entries"
        if field == "data.credit_limit_included":
            effect = "such an entry is never used for amount or available"
        elif field == "timestamp":
            effect = "tesoro's fetch time stands in for it"
        else:
            effect = "it is left empty"
        problems.append(
            connection.warning(
                UNREADABLE_FIELD,
                f"Finqware balance field {field!r} could not be read on {entries} "
                f"(sent {sent[0]}); {effect}",
                account_id,
            )
        )
    return problems


def _checked_entries(
    connection: _Connection,
    account_id: str,
    records: Sequence[FinqwareBalance],
) -> tuple[list[_Entry], list[ResponseWarning]]:
    """The entries with what the interpretation table needs, or the warnings that leave the
    account's position out (every entry must be usable: one that is not could be the
    current one)."""
    unknown: list[str] = []
    invalid: list[str] = []
    untyped: list[str] = []
    entries: list[_Entry] = []
    for record in records:
        data = record.data
        indicator = data.credit_debit_indicator
        if credit_debit(indicator) is None:
            unknown.append(_quote(indicator))
        amount = data.amount
        if amount is None:
            invalid.append(_sent(record.unreadable, "data.amount") or "nothing")
        else:
            try:
                check_amount(amount)
            except ValueError:
                invalid.append(_quote(str(amount)))
            else:
                if amount < 0:
                    invalid.append(_quote(str(amount)))
        balance_type = _first_text(data.type)
        if balance_type is None:
            untyped.append(_sent(record.unreadable, "data.type") or _quote(data.type))
        if indicator is None or amount is None or balance_type is None:
            continue
        entries.append(
            _Entry(
                source=record,
                amount=amount,
                indicator=indicator,
                type=balance_type,
                included=data.credit_limit_included is not False,
                queried_at=record.timestamp or connection.fetched_at,
            )
        )
    problems: list[ResponseWarning] = []
    if unknown:
        problems.append(
            connection.warning(
                UNKNOWN_CREDIT_DEBIT_INDICATOR,
                f"Finqware credit_debit_indicator {unknown[0]} is neither credit nor "
                "debit; the account's position is left out",
                account_id,
            )
        )
    if invalid:
        problems.append(
            connection.warning(
                INVALID_AMOUNT,
                f"Finqware amount {invalid[0]} is not a non-negative amount; "
                "the account's position is left out",
                account_id,
            )
        )
    if untyped:
        problems.append(
            connection.warning(
                INVALID_BALANCE_TYPE,
                f"Finqware balance type {untyped[0]} is not a type; "
                "the account's position is left out",
                account_id,
            )
        )
    return entries, problems


def _balance_entry(entry: _Entry, currency: str) -> BalanceEntry:
    data = entry.data
    amount, _ = finqware_signed(entry.amount, entry.indicator, currency)
    return BalanceEntry(
        id=entry.source.id or "",
        type=entry.type,
        amount=amount,
        currency=currency,
        credit_debit_indicator=entry.indicator,
        credit_limit_included=entry.included,
        credit_line=_line_in(entry.source, currency)[0],
        reported=_reported(entry.amount),
        native_date=data.native_date,
        native_timestamp=data.native_timestamp,
        fetched_at=entry.queried_at,
    )


def _signed(entry: _Entry | None, currency: str) -> Decimal | None:
    if entry is None:
        return None
    return finqware_signed(entry.amount, entry.indicator, currency)[0]


def _finqware_position(
    connection: _Connection,
    account_id: str,
    account_name: str,
    currency: str,
    records: Sequence[FinqwareBalance],
    warnings: list[ResponseWarning],
) -> Position | None:
    warnings.extend(_field_problems(connection, account_id, records))
    if any(_line_in(record, currency)[1] for record in records):
        warnings.append(
            connection.warning(
                CREDIT_LINE_OTHER_CURRENCY,
                f"a credit line is in another currency than the account's ({currency}); "
                "it is not used",
                account_id,
            )
        )
    entries, problems = _checked_entries(connection, account_id, records)
    if problems:
        warnings.extend(problems)
        return None
    orders = connection.orders
    picked = _first_in_order(entries, orders.current)
    fallback = False
    if picked is None:
        picked = _first_in_order(entries, orders.current_fallback)
        fallback = picked is not None
    if picked is None:
        warnings.append(
            connection.warning(
                NO_USABLE_BALANCE,
                "no balance of a configured current type without the credit line included",
                account_id,
            )
        )
        return None
    amount, meaning = finqware_signed(picked.amount, picked.indicator, currency)
    available = _signed(_first_in_order(entries, orders.available), currency)
    credit_line = _credit_line(picked, entries, currency)
    with_line = _signed(_first_in_order(entries, orders.available, included=True), currency)
    if with_line is None and available is not None and credit_line is not None:
        with_line = sum_exact([available, credit_line], currency)
    # Latest first within a type, then types in configured order (the sort is stable).
    newest_first = sorted(entries, key=_recency, reverse=True)
    ordered = sorted(newest_first, key=lambda entry: (orders.rank(entry.type), entry.type))
    return Position(
        counterparty_id=connection.counterparty_id,
        counterparty_name=connection.counterparty_name,
        kind=Kind.internal,
        source=Source.finqware,
        account_id=account_id,
        account_name=account_name,
        currency=currency,
        amount=amount,
        side=side_of(amount),
        meaning=meaning,
        available=available,
        available_with_credit_line=with_line,
        balance_type=picked.type,
        balance_type_fallback=fallback,
        balances=[_balance_entry(entry, currency) for entry in ordered],
        credit_line=credit_line,
        reported=ReportedFigure(
            amount=_reported(picked.amount),
            credit_debit_indicator=picked.indicator,
        ),
        as_of=balance_as_of(picked.source, picked.queried_at),
        fetched_at=connection.fetched_at,
    )
