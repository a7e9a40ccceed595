"""A connection's snapshot as objects the garbage collector never tracks: msgspec Structs
with the public models' field names, order and defaults (`app/domain/models.py` stays the
contract FastAPI documents), and the one way they are written as JSON and read back.

Frozen (nobody changes a snapshot: a change is `msgspec.structs.replace`), `gc=False` (they
hold no reference cycles, so the collector never walks them) and keyword-only (required
fields may follow defaulted ones, so they keep the models' order, which is the order msgspec
writes them in: the same JSON as the models' own, byte for byte).

Money is `Decimal`. msgspec writes a `Decimal` as `str()` does, which switches to exponent
form below a millionth or with a positive exponent (`1.98E-11`, `1E+2`) where the models
write fixed-point (`0.0000000000198`, `100`): such an amount is kept as `FixedPoint`, a
`Decimal` msgspec hands to `enc_hook`, which writes it as the models do. Every other amount
stays a plain `Decimal` (its `str()` is already the fixed-point text). The Structs holding
money check it in `__post_init__`, which construction and reading back both run: one `str()`
per amount, and an amount that is not a finite number (`NaN`, `Infinity`: never one a model
would take) is refused.

Reading back (`decode_snapshot`) checks what the public models would check besides types:
date-times with their offset (by msgspec, per value), and currency codes (once per distinct
code, after the decode: a pattern on the field would run a regular expression per value).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

import msgspec

from app.domain.models import (
    CURRENCY_PATTERN,
    Kind,
    Meaning,
    Side,
    Source,
    SourceErrorCode,
    SourceStatus,
)

# What the public models check besides types, checked when a snapshot is read back (the
# shared tier's bytes are data: a value the models would refuse is refused). A currency is
# checked against CURRENCY_PATTERN by `decode_snapshot`, once per distinct code.
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
Currency = str
_CURRENCY = re.compile(CURRENCY_PATTERN)


class FixedPoint(Decimal):
    """An amount whose `str()` is in exponent form: written fixed-point (the models' text)."""

    __slots__ = ()


def _unusual(text: str) -> bool:
    """Whether an amount's `str()` is not its fixed-point text: an exponent (`1.98E-11`),
    or not a number at all (`NaN`, `sNaN`, `Infinity`). Written out inline in the
    `__post_init__`s, which run for every amount constructed or read back; such an amount is
    then kept as `FixedPoint`, or refused (ValueError) when it is not one an amount can be."""
    return "E" in text or "N" in text or "n" in text


def fixed(value: Decimal) -> Decimal:
    """`value`, as an amount msgspec writes as the public models do; ValueError when it is
    not a finite number."""
    if type(value) is Decimal and _unusual(str(value)):
        return _fixed(value)
    return value


# No amount tesoro makes comes near (`app.domain.money.check_amount`: 30 integer digits, 400
# places); a stored `1E+400000000` would be written out as 400 MB of digits.
_MAX_FIXED_DIGITS = 1000


def _fixed(value: Decimal) -> Decimal:
    # ValueError: a decode reports it as a ValidationError (the value is refused).
    if not value.is_finite():
        raise ValueError(f"{value} is not an amount")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if value.adjusted() >= _MAX_FIXED_DIGITS or exponent <= -_MAX_FIXED_DIGITS:
        raise ValueError(f"{value} has too many digits for an amount")
    return value if type(value) is FixedPoint else FixedPoint(value)


def _fix(struct: msgspec.Struct, name: str, value: Decimal) -> None:
    msgspec.structs.force_setattr(struct, name, _fixed(value))


class ReportedFigure(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    amount: Decimal
    client_type: int | None = None
    credit_debit_indicator: str | None = None

    def __post_init__(self) -> None:
        # `_unusual` inline: a call per amount added about 25 ms to a 50,000-client read-back.
        text = str(self.amount)
        if "E" in text or "N" in text or "n" in text:
            _fix(self, "amount", self.amount)


class BalanceEntry(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    type: str
    amount: Decimal
    currency: Currency
    credit_debit_indicator: str
    credit_limit_included: bool
    credit_line: Decimal | None = None
    reported: Decimal
    native_date: date | None = None
    native_timestamp: Instant | None = None
    fetched_at: Instant

    def __post_init__(self) -> None:
        # `_unusual` inline, as in ReportedFigure.
        for name in ("amount", "credit_line", "reported"):
            value = getattr(self, name)
            if value is not None:
                text = str(value)
                if "E" in text or "N" in text or "n" in text:
                    _fix(self, name, value)


class Position(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    counterparty_id: str
    counterparty_name: str
    kind: Kind
    source: Source
    account_id: str
    account_name: str
    currency: Currency
    amount: Decimal
    side: Side
    meaning: Meaning
    available: Decimal | None = None
    available_with_credit_line: Decimal | None = None
    balance_type: str | None = None
    balance_type_fallback: bool = False
    balances: tuple[BalanceEntry, ...] = ()
    credit_line: Decimal | None = None
    reported: ReportedFigure
    as_of: Instant | None = None
    fetched_at: Instant

    def __post_init__(self) -> None:
        # `_unusual` inline, as in ReportedFigure: the amount, then the optional figures.
        text = str(self.amount)
        if "E" in text or "N" in text or "n" in text:
            _fix(self, "amount", self.amount)
        value = self.available
        if value is not None:
            text = str(value)
            if "E" in text or "N" in text or "n" in text:
                _fix(self, "available", value)
        value = self.available_with_credit_line
        if value is not None:
            text = str(value)
            if "E" in text or "N" in text or "n" in text:
                _fix(self, "available_with_credit_line", value)
        value = self.credit_line
        if value is not None:
            text = str(value)
            if "E" in text or "N" in text or "n" in text:
                _fix(self, "credit_line", value)


class Account(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    name: str
    currency: Currency
    position: Position | None


class SourceError(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    code: SourceErrorCode
    message: str


class Counterparty(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    id: str
    source: Source
    kind: Kind
    name: str
    description: str | None = None
    accounts: tuple[Account, ...]
    status: SourceStatus = SourceStatus.ok
    error: SourceError | None = None


class SnapshotWarning(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    code: str
    message: str
    source: str
    counterparty_id: str | None = None
    account_id: str | None = None


# The stored form's mark, first in a stored snapshot (bumped with the shape of what follows).
STORED_FORM = 2


class Snapshot(
    msgspec.Struct, frozen=True, gc=False, kw_only=True, array_like=True, tag=STORED_FORM
):
    """What one connection's upstream answer interprets to, as stored (see
    `app.domain.interpret.Interpreted`): never served, so written positionally,
    `[STORED_FORM, counterparties, warnings, ibans]`, and anything else (the objects of the
    first stored form included) is refused. What it holds are the served Structs, read back
    as the very types served: a positional form of those would have to be converted into
    them, which costs more than it saves (bench/README.md, "Snapshots")."""

    counterparties: tuple[Counterparty, ...]
    warnings: tuple[SnapshotWarning, ...]
    ibans: tuple[tuple[str, str], ...] = ()


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise NotImplementedError(f"cannot write {type(value).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_enc_hook)
_DECODER = msgspec.json.Decoder(Snapshot)


def encode_json(value: object) -> bytes:
    """Structs (or lists of them) as the public models would write the same data."""
    return _ENCODER.encode(value)


def decode_snapshot(raw: bytes) -> Snapshot:
    """A snapshot from its JSON; msgspec.ValidationError (a ValueError) when it is not one."""
    read = _DECODER.decode(raw)
    _check_currencies(read)
    return read


def _check_currencies(read: Snapshot) -> None:
    codes: set[str] = set()
    add = codes.add
    for counterparty in read.counterparties:
        for account in counterparty.accounts:
            add(account.currency)
            position = account.position
            if position is not None:
                add(position.currency)
                for balance in position.balances:
                    add(balance.currency)
    for code in codes:
        if _CURRENCY.fullmatch(code) is None:  # `$` alone would take "ARS\n"
            raise msgspec.ValidationError(f"{code!r} is not a currency code")
