"""What both upstreams' interpretation shares: warning codes, the warnings collector, helpers."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from app.domain.counterparties import normalize_text
from app.domain.models import CURRENCY_PATTERN, ResponseWarning, Side
from app.domain.snapshot import Account, Counterparty
from app.upstreams.reading import Unreadable

# Stable warning codes (ResponseWarning.code): callers may switch on them.
UNKNOWN_CLIENT_TYPE = "unknown_client_type"
UNKNOWN_CREDIT_DEBIT_INDICATOR = "unknown_credit_debit_indicator"
INVALID_AMOUNT = "invalid_amount"
INVALID_CURRENCY = "invalid_currency"
INVALID_BALANCE_TYPE = "invalid_balance_type"
NO_USABLE_BALANCE = "no_usable_balance"
ACCOUNT_DETAILS_UNAVAILABLE = "account_details_unavailable"
UNREADABLE_FIELD = "unreadable_field"
UNREADABLE_RECORD = "unreadable_record"
CREDIT_LINE_OTHER_CURRENCY = "credit_line_other_currency"
CONSENT_EXPIRING = "consent_expiring"
# One account, one count: the same account listed twice (two consents, two clients) is
# counted once; two copies of one record that disagree are never chosen between silently.
DUPLICATE_ACCOUNT = "duplicate_account"
CONFLICTING_RECORD = "conflicting_record"

_CURRENCY = re.compile(CURRENCY_PATTERN)
# Upstream text quoted in a warning is cut short: a warning is a pointer, not a dump.
_QUOTE_CHARS = 40


@dataclass(frozen=True)
class Interpreted:
    """Counterparties read from one upstream answer, and what could not be interpreted;
    `ibans` pairs each bank account id (`finqware:<id>`) with its IBAN, as the upstream
    listed it, so the same bank account can be recognised across consents."""

    counterparties: tuple[Counterparty, ...]
    warnings: tuple[ResponseWarning, ...]
    ibans: tuple[tuple[str, str], ...] = ()

    def with_warning(self, warning: ResponseWarning) -> Interpreted:
        return Interpreted(self.counterparties, (*self.warnings, warning), self.ibans)


@dataclass
class Warnings:
    """The one way interpretation collects warnings: about one connection (`source`), each
    about a counterparty and, when it concerns one, an account. `about` shares the list."""

    source: str
    counterparty_id: str | None = None
    items: list[ResponseWarning] = field(default_factory=list)

    def about(self, counterparty_id: str) -> Warnings:
        return Warnings(self.source, counterparty_id, self.items)

    def add(self, code: str, message: str, *, account_id: str | None = None) -> None:
        self.items.append(
            ResponseWarning(
                code=code,
                message=message,
                source=self.source,
                counterparty_id=self.counterparty_id,
                account_id=account_id,
            )
        )

    def unreadable_fields(
        self,
        what: str,
        unreadable: Iterable[Unreadable],
        shown: frozenset[str],
        *,
        account_id: str | None = None,
    ) -> None:
        """One `unreadable_field` warning per optional field tesoro shows that could not be
        read (fields tesoro does not use are ignored)."""
        for item in unreadable:
            if item.field in shown:
                self.add(
                    UNREADABLE_FIELD,
                    f"{what} field {item.field!r} could not be read (sent {item.sent}); "
                    "it is left empty",
                    account_id=account_id,
                )

    def done(self, counterparties: Iterable[Counterparty]) -> Interpreted:
        return Interpreted(tuple(counterparties), tuple(self.items))


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
    # Interned: a snapshot holds the same few codes tens of thousands of times.
    return sys.intern(code) if _CURRENCY.fullmatch(code) else None


def quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _QUOTE_CHARS else text[: _QUOTE_CHARS - 3] + "..."


def cut(text: str) -> str:
    return text if len(text) <= 2 * _QUOTE_CHARS else text[: 2 * _QUOTE_CHARS - 3] + "..."


def first_text(*candidates: str | None) -> str | None:
    for candidate in candidates:
        if candidate is not None and candidate.strip():
            return candidate.strip()
    return None


def unreadable_named(unreadable: Iterable[Unreadable], name: str) -> bool:
    return any(item.field == name for item in unreadable)


def sent(unreadable: Iterable[Unreadable], name: str) -> str | None:
    """What was sent for a field that could not be read, quoted; None when it was read."""
    return next((item.sent for item in unreadable if item.field == name), None)


def reported(amount: Decimal) -> Decimal:
    # The figure as received, except that a -0 would read as a liability in JSON.
    return amount.copy_abs() if amount.is_zero() else amount


def normalize_iban(raw: str | None) -> str | None:
    """An IBAN as compared across consents: without spaces, upper case; None when blank."""
    if raw is None:
        return None
    iban = "".join(raw.split()).upper()
    return iban or None


def account_order(account: Account) -> tuple[str, str, str]:
    return (normalize_text(account.name), account.id, account.currency)
