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
    without_negative_zero,
    zero_for,
)
from app.settings import (
    DEFAULT_AVAILABLE_ORDER,
    DEFAULT_CURRENT_FALLBACK_ORDER,
    DEFAULT_CURRENT_ORDER,
    Settings,
)
from app.upstreams.finqware import FinqwareAccount, FinqwareBalance
from app.upstreams.finsync import FinsyncAccount, FinsyncClientRecord

# Stable warning codes (ResponseWarning.code): callers may switch on them.
UNKNOWN_CLIENT_TYPE = "unknown_client_type"
UNKNOWN_CREDIT_DEBIT_INDICATOR = "unknown_credit_debit_indicator"
INVALID_AMOUNT = "invalid_amount"
INVALID_CURRENCY = "invalid_currency"
NO_USABLE_BALANCE = "no_usable_balance"
ACCOUNT_DETAILS_UNAVAILABLE = "account_details_unavailable"

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


def _reported(amount: Decimal) -> Decimal:
    # The figure as received, except that a -0 would read as a liability in JSON.
    return amount.copy_abs() if amount.is_zero() else amount


def _account_order(account: Account) -> tuple[str, str, str]:
    return (normalize_text(account.name), account.id, account.currency)


# --- FinSync ------------------------------------------------------------------------------


def interpret_finsync(clients: Sequence[FinsyncClientRecord], fetched_at: datetime) -> Interpreted:
    """Every FinSync client as a counterparty, in the order given."""
    counterparties: list[Counterparty] = []
    warnings: list[ResponseWarning] = []
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
    accounts: list[Account] = []
    warnings: list[ResponseWarning] = []
    for record in client.accounts:
        account = _finsync_account(client, kind, record, fetched, warnings)
        if account is not None:
            accounts.append(account)
    counterparty = Counterparty(
        id=counterparty_id,
        source=Source.finsync,
        kind=kind,
        name=client.name,
        description=client.description,
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
    kind: Kind,
    record: FinsyncAccount,
    fetched_at: datetime,
    warnings: list[ResponseWarning],
) -> Account | None:
    counterparty_id = f"finsync:{client.id}"
    account_id = f"finsync:{record.id}"
    currency = normalize_currency(record.currency_name)
    if currency is None:
        # Account.currency must be a code, so an account without one cannot be listed.
        warnings.append(
            ResponseWarning(
                code=INVALID_CURRENCY,
                message=f"FinSync currency {_quote(record.currency_name)} is not a currency "
                "code; the account is left out",
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
        warnings.append(
            ResponseWarning(
                code=INVALID_AMOUNT,
                message=f"FinSync balance {_quote(balance)} is not a usable amount",
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
        counterparty_name=client.name,
        kind=kind,
        source=Source.finsync,
        account_id=account_id,
        account_name=name,
        currency=currency,
        amount=amount,
        side=side_of(amount),
        meaning=meaning,
        reported=ReportedFigure(amount=_reported(balance), client_type=client.type),
        as_of=as_utc(record.updated_at) if record.updated_at is not None else None,
        fetched_at=fetched_at,
    )
    return Account(id=account_id, name=name, currency=currency, position=position)


# --- Finqware -----------------------------------------------------------------------------


def credit_debit(indicator: str) -> str | None:
    """`credit` or `debit`, ignoring case and surrounding spaces; None for anything else."""
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


def balance_as_of(balance: FinqwareBalance) -> datetime:
    """When the bank says the figure was true: its time, else its date at 00:00 UTC, else
    when Finqware asked the bank."""
    if balance.data.native_timestamp is not None:
        return as_utc(balance.data.native_timestamp)
    if balance.data.native_date is not None:
        return datetime.combine(balance.data.native_date, time(0), tzinfo=UTC)
    return as_utc(balance.timestamp)


def _recency(balance: FinqwareBalance) -> tuple[datetime, date, datetime, str]:
    # Latest wins: the bank's own time first; the id only makes ties deterministic.
    return (
        balance_as_of(balance),
        balance.data.native_date or date.min,
        as_utc(balance.timestamp),
        balance.id,
    )


def _latest_of_type(
    entries: Iterable[FinqwareBalance], balance_type: str
) -> FinqwareBalance | None:
    candidates = [
        entry
        for entry in entries
        if entry.data.type == balance_type and not entry.data.credit_limit_included
    ]
    return max(candidates, key=_recency) if candidates else None


def _first_in_order(
    entries: Sequence[FinqwareBalance], order: Iterable[str]
) -> FinqwareBalance | None:
    for balance_type in order:
        found = _latest_of_type(entries, balance_type)
        if found is not None:
            return found
    return None


def _credit_line(
    picked: FinqwareBalance, entries: Sequence[FinqwareBalance], currency: str
) -> Decimal | None:
    with_line = [entry for entry in entries if entry.data.credit_line is not None]
    if not with_line:
        return None
    # The picked entry's own line, else one of the picked type, else the latest of any type.
    best = max(
        with_line,
        key=lambda entry: (entry is picked, entry.data.type == picked.data.type, _recency(entry)),
    )
    line = best.data.credit_line
    assert line is not None
    return without_negative_zero(line, currency)


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


def interpret_finqware(
    key: str,
    label: str | None,
    accounts: Sequence[FinqwareAccount],
    balances: Sequence[FinqwareBalance],
    fetched_at: datetime,
    orders: BalanceOrders,
) -> Interpreted:
    """One Finqware consent as one internal counterparty, with one account per
    (bank account, currency) of its balances."""
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
    warnings: list[ResponseWarning] = []

    known: dict[str, FinqwareAccount] = {}
    for account in accounts:
        known.setdefault(account.id, account)
    groups: dict[str, dict[str, list[FinqwareBalance]]] = defaultdict(dict)
    with_balances: set[str] = set()
    bad_currencies: set[tuple[str, str]] = set()
    for balance in balances:
        with_balances.add(balance.account_id)
        currency = normalize_currency(balance.data.currency)
        if currency is None:
            bad_currencies.add((balance.account_id, balance.data.currency))
            continue
        groups[balance.account_id].setdefault(currency, []).append(balance)
    for account_ref, raw_currency in sorted(bad_currencies):
        warnings.append(
            connection.warning(
                INVALID_CURRENCY,
                f"Finqware currency {_quote(raw_currency)} is not a currency code; "
                "those balances are left out",
                f"finqware:{account_ref}",
            )
        )

    # Accounts only balances/get knows of still count; warnings follow this order, the
    # accounts themselves are sorted by name below.
    account_refs = list(dict.fromkeys([*known, *(balance.account_id for balance in balances)]))
    out: list[Account] = []
    for account_ref in account_refs:
        account_id = f"finqware:{account_ref}"
        name = _finqware_account_name(known.get(account_ref), account_ref)
        by_currency = groups.get(account_ref, {})
        if not by_currency:
            if account_ref not in with_balances:
                warnings.append(
                    connection.warning(
                        NO_USABLE_BALANCE, "Finqware sent no balance for this account", account_id
                    )
                )
            listed = known.get(account_ref)
            currency = normalize_currency(listed.data.currency) if listed is not None else None
            if currency is not None:
                out.append(Account(id=account_id, name=name, currency=currency, position=None))
            continue
        for currency, entries in sorted(by_currency.items()):
            position = _finqware_position(connection, account_id, name, currency, entries, warnings)
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


def _entry_problems(
    connection: _Connection,
    account_id: str,
    entries: Sequence[FinqwareBalance],
) -> list[ResponseWarning]:
    unknown = sorted(
        {
            entry.data.credit_debit_indicator
            for entry in entries
            if credit_debit(entry.data.credit_debit_indicator) is None
        }
    )
    invalid: list[Decimal] = []
    for entry in entries:
        try:
            check_amount(entry.data.amount)
        except ValueError:
            invalid.append(entry.data.amount)
            continue
        if entry.data.amount < 0:
            invalid.append(entry.data.amount)
    problems: list[ResponseWarning] = []
    if unknown:
        problems.append(
            connection.warning(
                UNKNOWN_CREDIT_DEBIT_INDICATOR,
                f"Finqware credit_debit_indicator {_quote(unknown[0])} is neither credit nor "
                "debit; the account's position is left out",
                account_id,
            )
        )
    if invalid:
        problems.append(
            connection.warning(
                INVALID_AMOUNT,
                f"Finqware amount {_quote(str(invalid[0]))} is not a non-negative amount; "
                "the account's position is left out",
                account_id,
            )
        )
    return problems


def _balance_entry(balance: FinqwareBalance, currency: str) -> BalanceEntry:
    data = balance.data
    amount, _ = finqware_signed(data.amount, data.credit_debit_indicator, currency)
    return BalanceEntry(
        id=balance.id,
        type=data.type,
        amount=amount,
        currency=currency,
        credit_debit_indicator=data.credit_debit_indicator,
        credit_limit_included=data.credit_limit_included,
        credit_line=(
            without_negative_zero(data.credit_line, currency)
            if data.credit_line is not None
            else None
        ),
        reported=_reported(data.amount),
        native_date=data.native_date,
        native_timestamp=(
            as_utc(data.native_timestamp) if data.native_timestamp is not None else None
        ),
        fetched_at=as_utc(balance.timestamp),
    )


def _finqware_position(
    connection: _Connection,
    account_id: str,
    account_name: str,
    currency: str,
    entries: Sequence[FinqwareBalance],
    warnings: list[ResponseWarning],
) -> Position | None:
    problems = _entry_problems(connection, account_id, entries)
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
    amount, meaning = finqware_signed(
        picked.data.amount, picked.data.credit_debit_indicator, currency
    )
    available_entry = _first_in_order(entries, orders.available)
    available = (
        finqware_signed(
            available_entry.data.amount, available_entry.data.credit_debit_indicator, currency
        )[0]
        if available_entry is not None
        else None
    )
    # Latest first within a type, then types in configured order (the sort is stable).
    newest_first = sorted(entries, key=_recency, reverse=True)
    ordered = sorted(
        newest_first, key=lambda entry: (orders.rank(entry.data.type), entry.data.type)
    )
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
        balance_type=picked.data.type,
        balance_type_fallback=fallback,
        balances=[_balance_entry(entry, currency) for entry in ordered],
        credit_line=_credit_line(picked, entries, currency),
        reported=ReportedFigure(
            amount=_reported(picked.data.amount),
            credit_debit_indicator=picked.data.credit_debit_indicator,
        ),
        as_of=balance_as_of(picked),
        fetched_at=connection.fetched_at,
    )
