"""Snapshots as the shared tier stores them: exact JSON in the stored form's positional
envelope, compressed and checksummed, never pickle; anything else is refused, never served."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import msgspec
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.interpret import Interpreted
from app.domain.models import Kind, Meaning, ResponseWarning, Side, Source, SourceStatus
from app.domain.snapshot import (
    STORED_FORM,
    Account,
    Counterparty,
    Position,
    ReportedFigure,
    encode_json,
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
    # The envelope is positional and marked; the counterparties inside, the served objects.
    assert raw.startswith(b'[%d,[{"id":"finsync:7",' % STORED_FORM)
    assert b'"0.10"' in raw  # amounts as exact strings
    assert len(data) < len(raw)
    assert zstandard.get_frame_parameters(data).has_checksum


def _raw(amount: Decimal = Decimal("1.5")) -> bytes:
    return zstandard.ZstdDecompressor().decompress(encode_interpreted(_snapshot(amount)))


def _first_form(raw: bytes) -> bytes:
    """The same snapshot in the first stored form (SCHEMA_VERSION 1): an object."""
    stored = msgspec.json.decode(raw)
    _, counterparties, warnings, ibans = stored
    return msgspec.json.encode(
        {"counterparties": counterparties, "warnings": warnings, "ibans": ibans}
    )


def test_a_snapshot_in_the_first_stored_form_is_refused() -> None:
    first = _first_form(_raw())
    assert first.startswith(b'{"counterparties":[{')
    with pytest.raises(ValueError, match="not a snapshot"):
        decode_interpreted(zstandard.ZstdCompressor().compress(first))
    # Nor the envelope of another stored form.
    other = _raw().replace(b"[%d,[{" % STORED_FORM, b"[%d,[{" % (STORED_FORM + 1), 1)
    with pytest.raises(ValueError, match="not a snapshot"):
        decode_interpreted(zstandard.ZstdCompressor().compress(other))


def test_a_truncated_or_corrupted_value_is_refused() -> None:
    data = encode_interpreted(_snapshot(Decimal("1520.50")))
    for cut in (1, len(data) // 2, len(data) - 1):
        with pytest.raises(ValueError, match="zstd"):
            decode_interpreted(data[:cut])
    # Every single flipped byte: refused by the frame (its header, its blocks, its checksum)
    # or by the decode, never read back as another snapshot.
    original = decode_interpreted(data)
    for at in range(len(data)):
        flipped = data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1 :]
        try:
            back = decode_interpreted(flipped)
        except ValueError:
            continue
        assert back == original, at


@pytest.mark.parametrize(
    "amount", [b'"NaN"', b'"-Infinity"', b'"sNaN"', b'"1e400000000"', b'"1E-5000"']
)
def test_an_amount_no_model_would_take_is_refused(amount: bytes) -> None:
    """Not a number, or one that would be written out as megabytes of digits."""
    raw = _raw()
    assert raw.count(b'"amount":"1.5"') == 2
    tampered = raw.replace(b'"amount":"1.5"', b'"amount":' + amount, 1)
    with pytest.raises(ValueError, match="not a snapshot"):
        decode_interpreted(zstandard.ZstdCompressor().compress(tampered))


# Amounts of every shape: exponents either way (`1.98E-11`, `1E+2`), zeros with a scale
# (`0E-8`), negative zero, up to 40 digits.
amounts = st.builds(
    lambda sign, digits, exponent: Decimal((sign, digits, exponent)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=40).map(tuple),
    st.integers(-40, 12),
) | st.sampled_from([Decimal("-0"), Decimal("-0E-8"), Decimal("0E+3"), Decimal("-1E-7")])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(amounts, st.none() | amounts, st.none() | amounts)
def test_money_comes_back_exact_and_served_as_it_was(
    amount: Decimal, available: Decimal | None, credit_line: Decimal | None
) -> None:
    [counterparty] = _snapshot(amount).counterparties
    position = counterparty.accounts[0].position
    assert position is not None
    position = msgspec.structs.replace(position, available=available, credit_line=credit_line)
    account = msgspec.structs.replace(counterparty.accounts[0], position=position)
    original = Interpreted((msgspec.structs.replace(counterparty, accounts=(account,)),), ())

    decoded = decode_interpreted(encode_interpreted(original))

    assert decoded == original
    back = decoded.counterparties[0].accounts[0].position
    assert back is not None
    for read, written in (
        (back.amount, amount),
        (back.reported.amount, amount),
        (back.available, available),
        (back.credit_line, credit_line),
    ):
        assert (read is None) == (written is None)
        if read is not None and written is not None:
            assert isinstance(read, Decimal)
            assert read == written
            assert read.is_signed() == written.is_signed()  # -0 stays -0
            assert format(read, "f") == format(written, "f")
    # What is served from it: the very bytes served from the original.
    assert encode_json(decoded.counterparties) == encode_json(original.counterparties)
    served = msgspec.json.decode(encode_json(back))
    assert served["amount"] == format(amount, "f")
