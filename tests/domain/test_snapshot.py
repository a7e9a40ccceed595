"""The snapshot Structs write what the public models write for the same data, byte for byte
(money in exponent form included), and read their own JSON back to the same bytes."""

from __future__ import annotations

import gc
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain import models, snapshot
from app.domain.snapshot import FixedPoint, decode_snapshot, encode_json, fixed

# Amounts of every shape a wire figure or a currency's scale can give: exponent form below a
# millionth (`1.98E-11`), a positive exponent (`1E+2`), zero with a scale (`0E-8`), negatives.
amounts = st.builds(
    lambda sign, digits, exponent: Decimal((sign, digits, exponent)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=20).map(tuple),
    st.integers(-20, 6),
)
texts = st.text(max_size=6)
# A snapshot's worth of nested data per example: slow to draw on a loaded machine, not wrong.
NESTED = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
instants = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC]),
)


@st.composite
def reported_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "amount": draw(amounts),
        "client_type": draw(st.none() | st.integers(0, 3)),
        "credit_debit_indicator": draw(st.none() | st.sampled_from(["credit", "debit"])),
    }


@st.composite
def balance_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(texts),
        "type": draw(st.sampled_from(["InterimBooked", "Expected", "ClosingAvailable"])),
        "amount": draw(amounts),
        "currency": draw(st.sampled_from(["ARS", "RON", "USDT"])),
        "credit_debit_indicator": draw(st.sampled_from(["credit", "debit"])),
        "credit_limit_included": draw(st.booleans()),
        "credit_line": draw(st.none() | amounts),
        "reported": draw(amounts),
        "native_date": draw(st.none() | st.dates(date(1990, 1, 1), date(2100, 1, 1))),
        "native_timestamp": draw(st.none() | instants),
        "fetched_at": draw(instants),
    }


@st.composite
def position_fields(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "counterparty_id": draw(texts),
        "counterparty_name": draw(texts),
        "kind": draw(st.sampled_from(models.Kind)),
        "source": draw(st.sampled_from(models.Source)),
        "account_id": draw(texts),
        "account_name": draw(texts),
        "currency": draw(st.sampled_from(["ARS", "USD", "USDT"])),
        "amount": draw(amounts),
        "side": draw(st.sampled_from(models.Side)),
        "meaning": draw(st.sampled_from(models.Meaning)),
        "available": draw(st.none() | amounts),
        "available_with_credit_line": draw(st.none() | amounts),
        "balance_type": draw(st.none() | texts),
        "balance_type_fallback": draw(st.booleans()),
        "balances": draw(st.lists(balance_fields(), max_size=1)),
        "credit_line": draw(st.none() | amounts),
        "reported": draw(reported_fields()),
        "as_of": draw(st.none() | instants),
        "fetched_at": draw(instants),
    }


@st.composite
def counterparty_fields(draw: st.DrawFn) -> dict[str, Any]:
    accounts = [
        {
            "id": draw(texts),
            "name": draw(texts),
            "currency": draw(st.sampled_from(["ARS", "EUR"])),
            "position": draw(st.none() | position_fields()),
        }
        for _ in range(draw(st.integers(0, 2)))
    ]
    error = draw(
        st.none()
        | st.builds(
            lambda code, message: {"code": code, "message": message},
            st.sampled_from(models.SourceErrorCode),
            texts,
        )
    )
    return {
        "id": draw(texts),
        "source": draw(st.sampled_from(models.Source)),
        "kind": draw(st.sampled_from(models.Kind)),
        "name": draw(texts),
        "description": draw(st.none() | texts),
        "accounts": accounts,
        "status": draw(st.sampled_from(models.SourceStatus)),
        "error": error,
    }


def as_structs(fields: dict[str, Any]) -> snapshot.Counterparty:
    """The Structs of the same data, built as interpretation builds them (plain `Decimal`s)."""

    def position(p: dict[str, Any]) -> snapshot.Position:
        return snapshot.Position(
            **{
                **p,
                "balances": tuple(snapshot.BalanceEntry(**b) for b in p["balances"]),
                "reported": snapshot.ReportedFigure(**p["reported"]),
            }
        )

    error = fields["error"]
    return snapshot.Counterparty(
        **{
            **fields,
            "accounts": tuple(
                snapshot.Account(
                    **{**a, "position": None if a["position"] is None else position(a["position"])}
                )
                for a in fields["accounts"]
            ),
            "error": None if error is None else snapshot.SourceError(**error),
        }
    )


@NESTED
@given(st.lists(counterparty_fields(), max_size=2))
def test_the_structs_write_what_the_public_models_write(found: list[dict[str, Any]]) -> None:
    structs = [as_structs(fields) for fields in found]
    written = (
        b"["
        + b",".join(models.Counterparty.model_validate(f).model_dump_json().encode() for f in found)
        + b"]"
    )
    assert encode_json(structs) == written


@NESTED
@given(st.lists(counterparty_fields(), max_size=2))
def test_a_snapshot_read_back_writes_the_same_bytes(found: list[dict[str, Any]]) -> None:
    written = encode_json(
        snapshot.Snapshot(counterparties=tuple(as_structs(f) for f in found), warnings=())
    )
    back = decode_snapshot(written)
    assert encode_json(back) == written
    assert back == decode_snapshot(written)


@NESTED
@given(st.lists(position_fields(), max_size=3))
def test_a_page_of_struct_positions_in_the_response_is_the_response_models_body(
    found: list[dict[str, Any]],
) -> None:
    """How an answer serves a page of the snapshot: the Structs' JSON where the response
    model writes its list, the very bytes of the response model holding the models."""
    at = datetime(2026, 12, 2, 9, tzinfo=UTC)
    common: dict[str, Any] = {
        "totals": [],
        "total": len(found),
        "page": 1,
        "page_size": 1000,
        "complete": True,
        "warnings": [],
        "sources": [],
        "generated_at": at,
    }
    served = (
        models.PositionsResponse(
            positions=[models.Position.model_validate(p) for p in found], **common
        )
        .model_dump_json()
        .encode()
    )
    head = models.PositionsResponse(positions=[], **common).model_dump_json().encode()
    page = [as_structs_position(p) for p in found]
    before, _, after = head.partition(b'"positions":[]')
    assert before + b'"positions":' + encode_json(page) + after == served


def as_structs_position(p: dict[str, Any]) -> snapshot.Position:
    fields = {
        "id": "c",
        "source": "finsync",
        "kind": "internal",
        "name": "n",
        "accounts": [{"id": "a", "name": "a", "currency": "ARS", "position": p}],
        "error": None,
    }
    position = as_structs(fields).accounts[0].position
    assert position is not None
    return position


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.0000000000198"), "0.0000000000198"),
        (Decimal("1.98E-11"), "0.0000000000198"),
        (Decimal("0E-8"), "0.00000000"),
        (Decimal("1E+2"), "100"),
        (Decimal("-5E+3"), "-5000"),
        (Decimal("1520.50"), "1520.50"),
    ],
)
def test_an_amount_is_written_fixed_point_as_the_models_write_it(
    amount: Decimal, text: str
) -> None:
    figure = snapshot.ReportedFigure(amount=amount)
    assert encode_json(figure) == models.ReportedFigure(amount=amount).model_dump_json().encode()
    assert msgspec.json.decode(encode_json(figure))["amount"] == text
    # Still the same number, whatever its form.
    assert figure.amount == amount


def test_only_amounts_written_in_exponent_form_are_kept_as_fixed_point() -> None:
    assert type(fixed(Decimal("12.50"))) is Decimal
    assert type(fixed(Decimal("1E-7"))) is FixedPoint
    read = decode_snapshot(
        encode_json(
            snapshot.Snapshot(
                counterparties=(as_structs_position_counterparty(Decimal("1E-9")),),
                warnings=(),
            )
        )
    )
    position = read.counterparties[0].accounts[0].position
    assert position is not None
    assert type(position.amount) is FixedPoint
    assert type(position.reported.amount) is Decimal  # 12.5: written as it reads


def as_structs_position_counterparty(amount: Decimal) -> snapshot.Counterparty:
    at = datetime(2026, 12, 2, tzinfo=UTC) - timedelta(days=1)
    position = snapshot.Position(
        counterparty_id="finsync:1",
        counterparty_name="Caja",
        kind=models.Kind.internal,
        source=models.Source.finsync,
        account_id="finsync:9",
        account_name="Caja",
        currency="USDT",
        amount=amount,
        side=models.Side.asset,
        meaning=models.Meaning.cash,
        reported=snapshot.ReportedFigure(amount=Decimal("12.5"), client_type=0),
        fetched_at=at,
    )
    return snapshot.Counterparty(
        id="finsync:1",
        source=models.Source.finsync,
        kind=models.Kind.internal,
        name="Caja",
        accounts=(
            snapshot.Account(id="finsync:9", name="Caja", currency="USDT", position=position),
        ),
    )


def test_a_snapshot_is_nothing_the_collector_tracks() -> None:
    counterparty = as_structs_position_counterparty(Decimal("1"))
    read = decode_snapshot(
        encode_json(snapshot.Snapshot(counterparties=(counterparty,), warnings=()))
    )
    assert not gc.is_tracked(counterparty)
    assert not gc.is_tracked(read.counterparties[0])
    # A tuple of untracked objects is untracked by the first collection that meets it.
    gc.collect()
    assert not gc.is_tracked(counterparty.accounts)
    assert not gc.is_tracked(counterparty.accounts[0].position)
    assert not any(
        gc.is_tracked(item) for item in (read, read.counterparties, read.counterparties[0].accounts)
    )
