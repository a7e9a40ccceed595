"""Snapshots as the shared tier stores them: exact JSON, compressed, never pickle."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import zstandard

from app.domain.interpret import Interpreted
from app.domain.models import Kind, Meaning, ResponseWarning, Side, Source, SourceStatus
from app.domain.snapshot import Account, Counterparty, Position, ReportedFigure
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
        balances=(),
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
        accounts=(Account(id="finsync:7:70", name="ARS", currency="ARS", position=position),),
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
    with pytest.raises(ValueError, match=r"zstd|not a snapshot"):
        decode_interpreted(data)


@pytest.mark.parametrize(
    ("written", "tampered"),
    [
        (b'"2026-05-04T12:00:00.123456-03:00"', b'"2026-05-04T12:00:00.123456"'),
        (b'"currency":"ARS"', b'"currency":"ars!"'),
    ],
)
def test_a_stored_value_the_public_models_would_refuse_is_refused(
    written: bytes, tampered: bytes
) -> None:
    raw = zstandard.ZstdDecompressor().decompress(encode_interpreted(_snapshot(Decimal("1.5"))))
    assert written in raw
    with pytest.raises(ValueError, match="not a snapshot"):
        decode_interpreted(zstandard.ZstdCompressor().compress(raw.replace(written, tampered)))


def test_a_decoded_snapshot_is_nothing_the_collector_walks() -> None:
    decoded = decode_interpreted(encode_interpreted(_snapshot(Decimal("1.5"))))
    gc.collect()
    [counterparty] = decoded.counterparties
    assert not gc.is_tracked(counterparty)
    assert not gc.is_tracked(counterparty.accounts)
    assert not gc.is_tracked(counterparty.accounts[0].position)


def test_an_amount_in_exponent_form_comes_back_written_as_the_models_write_it() -> None:
    raw = zstandard.ZstdDecompressor().decompress(
        encode_interpreted(decode_interpreted(encode_interpreted(_snapshot(Decimal("1.98E-11")))))
    )
    assert b'"amount":"0.0000000000198"' in raw
