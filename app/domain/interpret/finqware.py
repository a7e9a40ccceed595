"""Finqware balances to one counterparty per consent: the Finqware rows of the table.

| indicator | amount a (never negative) | `amount` | `meaning` |
|---|---|---|---|
| credit | a >= 0 | +a (kept exactly as sent) | cash |
| debit | a > 0 | -a | overdraft |
| any | 0 | 0 scaled to the currency | zero |

`amount` comes from the first balance type present in the *current* order, `available`
from the *available* order; entries that include the credit line are never picked for
either; the credit line is reported on its own. Anything else is left out with a warning.
Two copies that disagree (an account listed twice with different details, two balances of
one type for the same moment) are warned about (`conflicting_record`), and one is chosen by a
fixed rule, never by the order Finqware sent them in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal

from app.domain.ids import finqware_id
from app.domain.interpret.common import (
    CONFLICTING_RECORD,
    CREDIT_LINE_OTHER_CURRENCY,
    INVALID_AMOUNT,
    INVALID_BALANCE_TYPE,
    INVALID_CURRENCY,
    NO_USABLE_BALANCE,
    UNKNOWN_CREDIT_DEBIT_INDICATOR,
    UNREADABLE_FIELD,
    UNREADABLE_RECORD,
    Interpreted,
    Warnings,
    account_order,
    as_utc,
    cut,
    first_text,
    normalize_currency,
    normalize_iban,
    quote,
    reported,
    sent,
    side_of,
)
from app.domain.models import Kind, Meaning, Source
from app.domain.money import check_amount, negate, sum_exact, without_negative_zero, zero_for
from app.domain.snapshot import Account, BalanceEntry, Counterparty, Position, ReportedFigure
from app.upstreams.finqware import FinqwareAccount, FinqwareBalance, FinqwareBalanceData
from app.upstreams.reading import Rejected

# The default balance-type orders (configuration may replace them; settings import these).
DEFAULT_CURRENT_ORDER: tuple[str, ...] = (
    "InterimBooked",
    "ClosingBooked",
    "OpeningBooked",
    "PreviouslyClosedBooked",
)
DEFAULT_CURRENT_FALLBACK_ORDER: tuple[str, ...] = (
    "Expected",
    "InterimAvailable",
    "ClosingAvailable",
)
DEFAULT_AVAILABLE_ORDER: tuple[str, ...] = (
    "InterimAvailable",
    "Expected",
    "ClosingAvailable",
    "OpeningAvailable",
    "ForwardAvailable",
)
_CREDIT = "credit"
_DEBIT = "debit"


@dataclass(frozen=True)
class BalanceOrders:
    """Which Finqware balance types give a position's `amount` and `available`, best first."""

    current: tuple[str, ...] = DEFAULT_CURRENT_ORDER
    current_fallback: tuple[str, ...] = DEFAULT_CURRENT_FALLBACK_ORDER
    available: tuple[str, ...] = DEFAULT_AVAILABLE_ORDER

    @classmethod
    def default(cls) -> BalanceOrders:
        return cls()

    def rank(self, balance_type: str) -> int:
        """Place of a type in the orders combined; types in no order sort last."""
        combined = list(dict.fromkeys(self.current + self.current_fallback + self.available))
        return combined.index(balance_type) if balance_type in combined else len(combined)


# Finqware fields tesoro shows or uses besides the ones interpretation needs (amount,
# indicator, currency and type have warnings of their own); one that cannot be read is named
# in one `unreadable_field` warning per account. Fields tesoro does not use (servicer_id,
# account_type, account_sub_type, the accounts' timestamp and balances) are ignored.
_BALANCE_FIELDS_SHOWN = frozenset(
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
_ACCOUNT_FIELDS_SHOWN = frozenset(
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
    """The Finqware rows (module docstring) for a non-negative amount and a known indicator.

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
class _CheckedBalance:
    """A balance entry that passed every check: what interpretation reads of it."""

    source: FinqwareBalance
    amount: Decimal
    indicator: str
    type: str
    included: bool  # includes the credit line, or does not say readably: never picked
    queried_at: datetime  # Finqware's timestamp, else when tesoro fetched
    line: Decimal | None  # its credit line in the account's currency, read once

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


def _moment(entry: _CheckedBalance) -> tuple[datetime, date, datetime]:
    """When an entry says its figure was true: the bank's own time first, then its date,
    then when Finqware asked the bank."""
    return (
        balance_as_of(entry.source, _EPOCH),
        entry.data.native_date or date.min,
        entry.source.timestamp or _EPOCH,
    )


def _recency(entry: _CheckedBalance) -> tuple[tuple[datetime, date, datetime], str, Decimal, str]:
    # Latest wins. Two entries of one moment that disagree are warned about; the greater id,
    # then the greater amount, decides, so the choice never depends on Finqware's order.
    return (_moment(entry), entry.source.id or "", entry.amount, entry.indicator)


def _latest_of_type(
    entries: Iterable[_CheckedBalance], balance_type: str, *, included: bool
) -> _CheckedBalance | None:
    candidates = [e for e in entries if e.type == balance_type and e.included is included]
    return max(candidates, key=_recency) if candidates else None


def _first_in_order(
    entries: Sequence[_CheckedBalance], order: Iterable[str], *, included: bool = False
) -> _CheckedBalance | None:
    for balance_type in order:
        found = _latest_of_type(entries, balance_type, included=included)
        if found is not None:
            return found
    return None


def _line_in(entry: FinqwareBalance, currency: str) -> tuple[Decimal | None, tuple[str, ...]]:
    """The entry's credit line in `currency` (the sum of its lines), and, when it sent lines
    in other currencies only, those currencies."""
    lines = entry.data.credit_line
    if not lines:
        return None, ()
    usable = [
        line
        for line in lines
        if (line.type or "").casefold() != _NOT_A_LINE
        and (line.currency is None or line.currency == currency)
    ]
    if not usable:
        other = (line.currency for line in lines if line.currency not in (None, currency))
        return None, tuple(dict.fromkeys(code for code in other if code is not None))
    total = sum((line.amount for line in usable), Decimal(0))
    return without_negative_zero(total, currency), ()


def _credit_line(picked: _CheckedBalance, entries: Sequence[_CheckedBalance]) -> Decimal | None:
    with_line = [e for e in entries if e.line is not None]
    if not with_line:
        return None
    # The picked entry's own line, else one of the picked type, else the latest of any type.
    best = max(
        with_line,
        key=lambda entry: (entry is picked, entry.type == picked.type, _recency(entry)),
    )
    return best.line


@dataclass(frozen=True)
class _ConsentContext:
    """What every account of one consent is interpreted with: the counterparty it belongs
    to, when it was fetched, the balance orders and where warnings go."""

    counterparty_id: str
    counterparty_name: str
    fetched_at: datetime
    orders: BalanceOrders
    warnings: Warnings

    def warn(self, code: str, message: str, account_id: str | None) -> None:
        self.warnings.add(code, message, account_id=account_id)


def finqware_placeholder(key: str, label: str | None) -> Counterparty:
    """A bank connection that could not be read: still listed, named, with no accounts."""
    return Counterparty(
        id=finqware_id(key),
        source=Source.finqware,
        kind=Kind.internal,
        name=first_text(label) or key,
        description=None,
        accounts=(),
    )


def interpret_finqware(
    *,
    key: str,
    label: str | None,
    accounts: Sequence[FinqwareAccount],
    balances: Sequence[FinqwareBalance],
    fetched_at: datetime,
    orders: BalanceOrders,
    rejected_accounts: Sequence[Rejected] = (),
    rejected_balances: Sequence[Rejected] = (),
) -> Interpreted:
    """One Finqware consent as one internal counterparty, with one account per
    (bank account, currency) of its balances; records Finqware sent without a readable id
    (`rejected_*`) are named in `unreadable_record` warnings."""
    bank_name = first_text(*(account.servicer_name for account in accounts))
    own_label = first_text(label)
    counterparty_id = finqware_id(key)
    # Warnings point at the connection the way `sources` names it: the counterparty's id.
    warnings = Warnings(counterparty_id).about(counterparty_id)
    connection = _ConsentContext(
        counterparty_id=counterparty_id,
        counterparty_name=own_label or bank_name or key,
        fetched_at=as_utc(fetched_at),
        orders=orders,
        warnings=warnings,
    )
    for what, records in (("balance entry", rejected_balances), ("account", rejected_accounts)):
        for rejected in records:
            warnings.add(
                UNREADABLE_RECORD,
                f"a Finqware {what} could not be read ({cut(rejected.reason)}); it is left out",
            )

    known = _listed_once(accounts, warnings)
    groups: dict[str, dict[str, list[FinqwareBalance]]] = defaultdict(dict)
    with_balances: set[str] = set()
    bad_currencies: dict[str, str] = {}
    for balance in balances:
        with_balances.add(balance.account_id)
        currency = normalize_currency(balance.data.currency)
        if currency is None:
            shown = sent(balance.unreadable, "data.currency") or quote(balance.data.currency)
            bad_currencies.setdefault(balance.account_id, shown)
            continue
        groups[balance.account_id].setdefault(currency, []).append(balance)
    for account_ref, shown in sorted(bad_currencies.items()):
        warnings.add(
            INVALID_CURRENCY,
            f"Finqware currency {shown} is not a currency code; those balances are left out",
            account_id=finqware_id(account_ref),
        )

    # Accounts only balances/get knows of still count; warnings follow this order, the
    # accounts themselves are sorted by name below.
    account_refs = list(dict.fromkeys([*known, *(balance.account_id for balance in balances)]))
    out: list[Account] = []
    for account_ref in account_refs:
        account_id = finqware_id(account_ref)
        listed = known.get(account_ref)
        if listed is not None:
            warnings.unreadable_fields(
                "Finqware account",
                listed.unreadable,
                _ACCOUNT_FIELDS_SHOWN,
                account_id=account_id,
            )
        name = _finqware_account_name(listed, account_ref)
        by_currency = groups.get(account_ref, {})
        if not by_currency:
            if account_ref not in with_balances:
                warnings.add(
                    NO_USABLE_BALANCE,
                    "Finqware sent no balance for this account",
                    account_id=account_id,
                )
            currency = normalize_currency(listed.data.currency) if listed is not None else None
            if currency is not None:
                out.append(Account(id=account_id, name=name, currency=currency, position=None))
            continue
        for currency, entries in sorted(by_currency.items()):
            position = _position(connection, account_id, name, currency, entries)
            out.append(Account(id=account_id, name=name, currency=currency, position=position))

    counterparty = Counterparty(
        id=connection.counterparty_id,
        source=Source.finqware,
        kind=Kind.internal,
        name=connection.counterparty_name,
        # The bank's name describes a labelled connection, unless the label already says it.
        description=bank_name if own_label is not None and bank_name != own_label else None,
        accounts=tuple(sorted(out, key=account_order)),
    )
    ibans = (
        (finqware_id(ref), iban)
        for ref, listed in known.items()
        if (iban := normalize_iban(listed.data.iban)) is not None
    )
    return Interpreted((counterparty,), tuple(warnings.items), tuple(ibans))


def _listing(account: FinqwareAccount) -> dict[str, str | None]:
    """What tesoro reads of an account's listing: two copies that differ here conflict."""
    data = account.data
    return {
        "IBAN": normalize_iban(data.iban),
        "currency": normalize_currency(data.currency),
        "name": first_text(data.name),
        "nickname": first_text(data.nickname),
        "bank": first_text(account.servicer_name),
    }


def _listed_once(
    accounts: Sequence[FinqwareAccount], warnings: Warnings
) -> dict[str, FinqwareAccount]:
    """Each account id once: identical repeats merge; copies with different details are
    warned about, and the one Finqware stamped latest is used (on a tie, the one whose
    details sort last, so the order Finqware lists them in never decides)."""
    known: dict[str, FinqwareAccount] = {}
    differing: dict[str, set[str]] = {}
    for account in accounts:
        held = known.get(account.id)
        if held is None:
            known[account.id] = account
            continue
        before, now = _listing(held), _listing(account)
        fields = {name for name in before if before[name] != now[name]}
        if not fields:
            continue
        differing.setdefault(account.id, set()).update(fields)
        if _listing_rank(account) > _listing_rank(held):
            known[account.id] = account
    for ref, fields in differing.items():
        warnings.add(
            CONFLICTING_RECORD,
            "Finqware lists this account more than once with different details "
            f"({', '.join(sorted(fields))}); the copy with the latest timestamp is used",
            account_id=finqware_id(ref),
        )
    return known


def _listing_rank(account: FinqwareAccount) -> tuple[datetime, tuple[str, ...]]:
    stamp = _EPOCH if account.timestamp is None else as_utc(account.timestamp)
    return stamp, tuple(value or "" for value in _listing(account).values())


def _finqware_account_name(account: FinqwareAccount | None, account_ref: str) -> str:
    if account is None:
        return account_ref
    data = account.data
    return first_text(data.name, data.nickname, data.iban) or account_ref


def _field_problems(
    connection: _ConsentContext, account_id: str, records: Sequence[FinqwareBalance]
) -> None:
    """One warning per optional field that could not be read on some of the account's
    entries (with how many and the first value sent)."""
    seen: dict[str, list[str]] = {}
    for record in records:
        for item in record.unreadable:
            if item.field in _BALANCE_FIELDS_SHOWN:
                seen.setdefault(item.field, []).append(item.sent)
    for field, values in seen.items():
        entries = "entry" if len(values) == 1 else f"{len(values)} entries"
        if field == "data.credit_limit_included":
            effect = "such an entry is never used for amount or available"
        elif field == "timestamp":
            effect = "tesoro's fetch time stands in for it"
        else:
            effect = "it is left empty"
        connection.warn(
            UNREADABLE_FIELD,
            f"Finqware balance field {field!r} could not be read on {entries} "
            f"(sent {values[0]}); {effect}",
            account_id,
        )


def _checked_entries(
    connection: _ConsentContext,
    account_id: str,
    records: Sequence[FinqwareBalance],
    lines: dict[int, tuple[Decimal | None, tuple[str, ...]]],
) -> list[_CheckedBalance] | None:
    """The entries with what the interpretation table needs; None, with the warnings that
    say why, when the account's position is left out (every entry must be usable: one that
    is not could be the current one)."""
    unknown: list[str] = []
    invalid: list[str] = []
    untyped: list[str] = []
    entries: list[_CheckedBalance] = []
    for record in records:
        data = record.data
        indicator = data.credit_debit_indicator
        if credit_debit(indicator) is None:
            unknown.append(quote(indicator))
        amount = data.amount
        if amount is None:
            invalid.append(sent(record.unreadable, "data.amount") or "nothing")
        else:
            try:
                check_amount(amount)
            except ValueError:
                invalid.append(quote(str(amount)))
            else:
                if amount < 0:
                    invalid.append(quote(str(amount)))
        balance_type = first_text(data.type)
        if balance_type is None:
            untyped.append(sent(record.unreadable, "data.type") or quote(data.type))
        if indicator is None or amount is None or balance_type is None:
            continue
        entries.append(
            _CheckedBalance(
                source=record,
                amount=amount,
                indicator=indicator,
                type=balance_type,
                included=data.credit_limit_included is not False,
                queried_at=record.timestamp or connection.fetched_at,
                line=lines[id(record)][0],
            )
        )
    if unknown:
        connection.warn(
            UNKNOWN_CREDIT_DEBIT_INDICATOR,
            f"Finqware credit_debit_indicator {unknown[0]} is neither credit nor "
            "debit; the account's position is left out",
            account_id,
        )
    if invalid:
        connection.warn(
            INVALID_AMOUNT,
            f"Finqware amount {invalid[0]} is not a non-negative amount; "
            "the account's position is left out",
            account_id,
        )
    if untyped:
        connection.warn(
            INVALID_BALANCE_TYPE,
            f"Finqware balance type {untyped[0]} is not a type; the account's position is left out",
            account_id,
        )
    return None if unknown or invalid or untyped else entries


def _shown_code(code: str) -> str:
    return code if normalize_currency(code) == code else quote(code)


def _same_moment_conflicts(
    connection: _ConsentContext, account_id: str, entries: Sequence[_CheckedBalance]
) -> None:
    """One `conflicting_record` warning per balance type that has entries for the same
    moment (with or without the credit line alike) that disagree on the figure."""
    # The same moment is the bank's own time (or date); only without either, Finqware's.
    groups: dict[tuple[str, bool, tuple[datetime, date]], list[_CheckedBalance]] = {}
    for entry in entries:
        moment = _moment(entry)
        groups.setdefault((entry.type, entry.included, moment[:2]), []).append(entry)
    for (balance_type, included, _), group in groups.items():
        figures = {_figure(entry) for entry in group}
        if len(figures) < 2:
            continue
        chosen = max(group, key=_recency)
        when = _iso(balance_as_of(chosen.source, chosen.queried_at))
        amounts = ", ".join(sorted(_signed_text(entry) for entry in group))
        line = " with the credit line included" if included else ""
        connection.warn(
            CONFLICTING_RECORD,
            f"Finqware sent {len(group)} {balance_type} balances{line} for the same moment "
            f"({when}) that disagree ({amounts}); where that type is used, entry "
            f"{quote(chosen.source.id or '')} ({_signed_text(chosen)}) is: the one Finqware "
            "queried last, then the greatest id, decides",
            account_id,
        )


def _figure(entry: _CheckedBalance) -> tuple[Decimal, str | None]:
    # A zero is the same figure whatever its indicator says (and 5.0 is 5.00).
    if entry.amount.is_zero():
        return Decimal(0), None
    return entry.amount, credit_debit(entry.indicator)


def _signed_text(entry: _CheckedBalance) -> str:
    direction = credit_debit(entry.indicator)
    sign = "-" if direction == _DEBIT and not entry.amount.is_zero() else ""
    return f"{sign}{entry.amount}"


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def _balance_entry(entry: _CheckedBalance, currency: str) -> BalanceEntry:
    data = entry.data
    amount, _ = finqware_signed(entry.amount, entry.indicator, currency)
    return BalanceEntry(
        id=entry.source.id or "",
        type=entry.type,
        amount=amount,
        currency=currency,
        credit_debit_indicator=entry.indicator,
        credit_limit_included=entry.included,
        credit_line=entry.line,
        reported=reported(entry.amount),
        native_date=data.native_date,
        native_timestamp=data.native_timestamp,
        fetched_at=entry.queried_at,
    )


def _signed(entry: _CheckedBalance | None, currency: str) -> Decimal | None:
    if entry is None:
        return None
    return finqware_signed(entry.amount, entry.indicator, currency)[0]


def _position(
    connection: _ConsentContext,
    account_id: str,
    account_name: str,
    currency: str,
    records: Sequence[FinqwareBalance],
) -> Position | None:
    _field_problems(connection, account_id, records)
    lines = {id(record): _line_in(record, currency) for record in records}
    others = dict.fromkeys(code for _, codes in lines.values() for code in codes)
    if others:
        shown = ", ".join(_shown_code(code) for code in others)
        connection.warn(
            CREDIT_LINE_OTHER_CURRENCY,
            f"a credit line in {shown} is not in the account's currency ({currency}); "
            "it is not used",
            account_id,
        )
    entries = _checked_entries(connection, account_id, records, lines)
    if entries is None:
        return None
    _same_moment_conflicts(connection, account_id, entries)
    orders = connection.orders
    picked = _first_in_order(entries, orders.current)
    fallback = False
    if picked is None:
        picked = _first_in_order(entries, orders.current_fallback)
        fallback = picked is not None
    if picked is None:
        connection.warn(
            NO_USABLE_BALANCE,
            "no balance of a configured current type without the credit line included",
            account_id,
        )
        return None
    amount, meaning = finqware_signed(picked.amount, picked.indicator, currency)
    available = _signed(_first_in_order(entries, orders.available), currency)
    credit_line = _credit_line(picked, entries)
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
        balances=tuple(_balance_entry(entry, currency) for entry in ordered),
        credit_line=credit_line,
        reported=ReportedFigure(
            amount=reported(picked.amount),
            credit_debit_indicator=picked.indicator,
        ),
        as_of=balance_as_of(picked.source, picked.queried_at),
        fetched_at=connection.fetched_at,
    )
