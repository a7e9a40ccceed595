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
stays a plain `Decimal` (its `str()` is already the fixed-point text), so reading a snapshot
back costs no Python call per amount.
"""

from __future__ import annotations

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
# shared tier's bytes are data: a value the models would refuse is refused).
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
Currency = Annotated[str, msgspec.Meta(pattern=CURRENCY_PATTERN)]


class FixedPoint(Decimal):
    """An amount whose `str()` is in exponent form: written fixed-point (the models' text)."""

    __slots__ = ()


def fixed(value: Decimal) -> Decimal:
    """`value`, as an amount msgspec writes as the public models do."""
    if type(value) is Decimal and "E" in str(value):
        return FixedPoint(value)
    return value


def _fix_money(struct: msgspec.Struct, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(struct, name)
        if value is not None and type(value) is Decimal and "E" in str(value):
            msgspec.structs.force_setattr(struct, name, FixedPoint(value))


class ReportedFigure(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    amount: Decimal
    client_type: int | None = None
    credit_debit_indicator: str | None = None

    def __post_init__(self) -> None:
        _fix_money(self, ("amount",))


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
        _fix_money(self, ("amount", "credit_line", "reported"))


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
        _fix_money(self, ("amount", "available", "available_with_credit_line", "credit_line"))


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


class Snapshot(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """What one connection's upstream answer interprets to, as stored (see
    `app.domain.interpret.Interpreted`)."""

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
    return _DECODER.decode(raw)
