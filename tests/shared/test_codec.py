"""Snapshots as the shared tier stores them: exact JSON, compressed, never pickle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import zstandard

from app.domain.interpret import Interpreted
from app.domain.models import (
    Account,
    Counterparty,
    Kind,
    Meaning,
    Position,
    ReportedFigure,
    ResponseWarning,
    Side,
    Source,
    SourceStatus,
)
from app.services.codec import decode_interpreted, encode_interpreted

FETCHED = datetime(2026, 5, 4, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-3)))


def _snapshot(amount: Decimal) -> Interpreted:
    position = Position(
        counterparty_id="finsync:7",
        counterparty_name="Ñandú Textil S.A.",
        kind=Kind.external,
        source=Source.finsync,
        account_id="finsync:7:70",
        account_name="ARS",
        currency="ARS",
        amount=amount,
        side=Side.asset,
        meaning=Meaning.receivable,
        available=None,
        available_with_credit_line=None,
        balance_type=None,
        balance_type_fallback=False,
        balances=[],
        credit_line=None,
        reported=ReportedFigure(amount=amount, client_type=1, credit_debit_indicator=None),
        as_of=None,
        fetched_at=FETCHED,
    )
    counterparty = Counterparty(
        id="finsync:7",
        source=Source.finsync,
        kind=Kind.external,
        name="Ñandú Textil S.A.",
        description="“quoted” \u200b text",
        accounts=[Account(id="finsync:7:70", name="ARS", currency="ARS", position=position)],
        status=SourceStatus.ok,
        error=None,
    )
    warning = ResponseWarning(
        code="invalid_amount",
        message="the balance 'x' is not a number",
        source="finsync",
        counterparty_id="finsync:7",
        account_id="finsync:7:71",
    )
    return Interpreted((counterparty,), (warning,))


@pytest.mark.parametrize(
    "amount",
    [
        Decimal("1520.50"),
        Decimal("-0.000000000000000000000000001"),
        Decimal("123456789012345678901234567890.123456789012345678901234567890"),
        Decimal("1E+2"),
        Decimal("0"),
    ],
)
def test_a_snapshot_comes_back_equal_with_exact_decimals_and_its_warnings(
    amount: Decimal,
) -> None:
    original = _snapshot(amount)
    decoded = decode_interpreted(encode_interpreted(original))
    assert decoded == original
    [counterparty] = decoded.counterparties
    position = counterparty.accounts[0].position
    assert position is not None
    assert isinstance(position.amount, Decimal)
    assert position.amount == amount
    assert position.fetched_at.utcoffset() == timedelta(hours=-3)
    assert decoded.warnings == original.warnings


def test_a_snapshot_keeps_the_ibans_that_recognise_a_bank_account_across_consents() -> None:
    original = Interpreted((), (), (("finqware:acc-1", "RO43BTRLRONCRT0A56010101"),))
    assert decode_interpreted(encode_interpreted(original)).ibans == original.ibans


def test_the_bytes_are_compressed_json_not_pickle() -> None:
    data = encode_interpreted(_snapshot(Decimal("0.10")))
    raw = zstandard.ZstdDecompressor().decompress(data)
    assert raw.startswith(b"{")
    assert b'"0.10"' in raw  # amounts as exact strings
    assert len(data) < len(raw)


@pytest.mark.parametrize(
    "data",
    [
        b"not zstd",
        zstandard.ZstdCompressor().compress(b'{"counterparties": "no"}'),
        zstandard.ZstdCompressor().compress(b"\x80\x04K\x01."),  # a pickle
    ],
)
def test_bytes_that_are_not_a_snapshot_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"zstd|validation error"):
        decode_interpreted(data)


def test_a_decoded_snapshot_is_as_compact_as_an_interpreted_one() -> None:
    one, other = (
        decode_interpreted(encode_interpreted(_snapshot(amount)))
        for amount in (Decimal("1.5"), Decimal("-2"))
    )
    first, second = (snapshot.counterparties[0].accounts[0].position for snapshot in (one, other))
    assert first is not None
    assert second is not None
    assert first.__pydantic_fields_set__ is second.__pydantic_fields_set__
    assert one.counterparties[0].__pydantic_fields_set__ is (
        other.counterparties[0].__pydantic_fields_set__
    )
