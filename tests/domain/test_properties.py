"""Property tests of the interpretation rules: signs, zeros, sides and totals."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.interpret import (
    BalanceOrders,
    FinsyncPages,
    interpret_finqware,
    interpret_finsync,
)
from app.domain.models import Meaning, Side
from app.domain.money import round_upstream_number
from app.domain.positions import positions_of, totals
from app.domain.snapshot import Position, encode_json
from app.upstreams.finqware import FinqwareBalance
from app.upstreams.finsync import FinsyncClientRecord
from app.upstreams.reading import Parsed
from tests.support.interpreted import FETCHED_AT

CURRENCIES = ["ARS", "USD", "JPY", "KWD", "CLF", "USDT"]
BALANCE_TYPES = [
    "InterimBooked",
    "ClosingBooked",
    "Expected",
    "InterimAvailable",
    "ClosingAvailable",
    "Information",
    "SomethingNew",
]
LIMIT = Decimal("1E+15")
NEGATIVE_ZERO_JSON = re.compile(r'"-0(\.0*)?"')
FAST = settings(max_examples=150, deadline=None)


def decimals(min_value: Decimal, max_value: Decimal, max_places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(0, max_places).flatmap(
        lambda places: st.decimals(
            min_value=min_value,
            max_value=max_value,
            allow_nan=False,
            allow_infinity=False,
            places=places,
        )
    )


# Up to 17 places: float noise such as 0.30000000000000004 included.
finsync_balances = decimals(-LIMIT, LIMIT, 17)
finqware_amounts = decimals(Decimal(0), LIMIT, 5)


def sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


def assert_consistent(position: Position) -> None:
    amount = position.amount
    assert not (amount.is_zero() and amount.is_signed()), "negative zero"
    assert amount.is_zero() == (position.meaning is Meaning.zero) == (position.side is Side.flat)
    expected_side = {1: Side.asset, -1: Side.liability, 0: Side.flat}[sign(amount)]
    assert position.side is expected_side
    assert NEGATIVE_ZERO_JSON.search(encode_json(position).decode()) is None


@st.composite
def finsync_clients(draw: st.DrawFn) -> list[FinsyncClientRecord]:
    count = draw(st.integers(0, 6))
    clients = []
    for client_id in range(1, count + 1):
        accounts = [
            {
                "id": client_id * 100 + index,
                "currency_name": draw(st.sampled_from(CURRENCIES)),
                "balance": draw(finsync_balances),
            }
            for index in range(draw(st.integers(0, 3)))
        ]
        clients.append(
            FinsyncClientRecord.model_validate(
                {
                    "id": client_id,
                    "name": f"client {client_id}",
                    "type": draw(st.sampled_from([0, 1])),
                    "accounts": accounts,
                }
            )
        )
    return clients


@FAST
@given(
    balance=finsync_balances,
    client_type=st.sampled_from([0, 1]),
    currency=st.sampled_from(CURRENCIES),
)
def test_finsync_sign_rules_hold_for_any_balance(
    balance: Decimal, client_type: int, currency: str
) -> None:
    record = FinsyncClientRecord.model_validate(
        {
            "id": 1,
            "name": "c",
            "type": client_type,
            "accounts": [{"id": 2, "currency_name": currency, "balance": balance}],
        }
    )
    [counterparty] = interpret_finsync([record], fetched_at=FETCHED_AT).counterparties
    position = counterparty.accounts[0].position
    assert position is not None
    assert_consistent(position)
    rounded = round_upstream_number(balance, currency)
    assert sign(rounded) in (0, sign(balance))
    expected_sign = sign(rounded) if client_type == 0 else -sign(rounded)
    assert sign(position.amount) == expected_sign
    assert position.amount.copy_abs() == rounded.copy_abs()
    assert position.reported.amount == balance


@st.composite
def finqware_balances(draw: st.DrawFn) -> list[FinqwareBalance]:
    entries = []
    for index in range(draw(st.integers(0, 8))):
        entries.append(
            FinqwareBalance.model_validate(
                {
                    "account_id": draw(st.sampled_from(["a", "b"])),
                    "id": f"bal-{index}",
                    "timestamp": datetime(2026, 5, 4, draw(st.integers(0, 23))),
                    "data": {
                        "amount": draw(finqware_amounts),
                        "credit_debit_indicator": draw(st.sampled_from(["credit", "debit"])),
                        "credit_limit_included": draw(st.booleans()),
                        "currency": draw(st.sampled_from(["RON", "EUR"])),
                        "type": draw(st.sampled_from(BALANCE_TYPES)),
                    },
                }
            )
        )
    return entries


@FAST
@given(balances=finqware_balances())
def test_finqware_credit_is_never_negative_and_debit_never_positive(
    balances: list[FinqwareBalance],
) -> None:
    result = interpret_finqware(
        key="k",
        label=None,
        accounts=[],
        balances=balances,
        fetched_at=FETCHED_AT,
        orders=BalanceOrders.default(),
    )
    positions = positions_of(result.counterparties)
    for position in positions:
        assert_consistent(position)
        picked = [
            entry
            for entry in position.balances
            if entry.type == position.balance_type and not entry.credit_limit_included
        ]
        assert position.amount in [entry.amount for entry in picked]
        for entry in position.balances:
            assert not (entry.amount.is_zero() and entry.amount.is_signed())
            assert entry.amount.copy_abs() == entry.reported
            if entry.credit_debit_indicator == "credit":
                assert entry.amount >= 0
            else:
                assert entry.amount <= 0
    # Every balance is echoed once in a position, or its account is named in a warning.
    echoed = [entry.id for position in positions for entry in position.balances]
    assert len(echoed) == len(set(echoed))
    warned = {warning.account_id for warning in result.warnings}
    for sent in balances:
        assert sent.id in echoed or f"finqware:{sent.account_id}" in warned


@FAST
@given(clients=finsync_clients())
def test_totals_add_up_per_currency(clients: list[FinsyncClientRecord]) -> None:
    positions = positions_of(interpret_finsync(clients, fetched_at=FETCHED_AT).counterparties)
    by_currency = {total.currency: total for total in totals(positions)}
    assert sorted(by_currency) == sorted({p.currency for p in positions})
    for currency, total in by_currency.items():
        amounts = [p.amount for p in positions if p.currency == currency]
        assert total.net == sum(amounts, Decimal(0))
        assert total.assets - total.liabilities == total.net
        assert total.assets >= 0
        assert total.liabilities >= 0
        assert total.cash + total.overdraft + total.receivable + total.payable == total.net
        assert total.overdraft <= 0
        assert total.payable <= 0
        for figure in (total.assets, total.liabilities, total.net, total.cash, total.payable):
            assert not (figure.is_zero() and figure.is_signed())


@FAST
@given(amount=finsync_balances, currency=st.sampled_from(CURRENCIES))
def test_rounding_is_idempotent_fixed_point_and_within_half_a_unit(
    amount: Decimal, currency: str
) -> None:
    rounded = round_upstream_number(amount, currency)
    exponent = rounded.as_tuple().exponent
    assert isinstance(exponent, int)
    assert -8 <= exponent <= 0
    assert round_upstream_number(rounded, currency) == rounded
    assert not (rounded.is_zero() and rounded.is_signed())
    assert abs(rounded - amount) <= Decimal(1).scaleb(exponent) / 2


@st.composite
def moving_pages(draw: st.DrawFn) -> list[list[FinsyncClientRecord]]:
    """Pages of a FinSync list read while it moves: clients repeated on several pages
    (a page shift), some copies changed in between, accounts listed under two clients."""
    pages = []
    for _ in range(draw(st.integers(1, 4))):
        page = []
        for _ in range(draw(st.integers(0, 4))):
            client_id = draw(st.integers(1, 5))
            page.append(
                FinsyncClientRecord.model_validate(
                    {
                        "id": client_id,
                        "name": f"client {client_id}",
                        "type": draw(st.sampled_from([0, 1, 7])),
                        "accounts": [
                            {
                                "id": draw(st.integers(1, 6)),
                                "currency_name": "ARS",
                                "balance": draw(st.sampled_from(["0", "10.5", "-3"])),
                                "updated_at": datetime(2026, 5, 4, draw(st.integers(8, 10))),
                            }
                            for _ in range(draw(st.integers(0, 2)))
                        ],
                    }
                )
            )
        pages.append(page)
    return pages


def _read(pages: list[list[FinsyncClientRecord]], arrival: list[int]) -> FinsyncPages:
    read = FinsyncPages(fetched_at=FETCHED_AT)
    for index in arrival:
        read.add(index + 1, Parsed(pages[index], []))
    return read


@FAST
@given(pages=moving_pages(), data=st.data())
def test_a_moving_list_reads_the_same_whatever_order_its_pages_land_or_are_numbered_in(
    pages: list[list[FinsyncClientRecord]], data: st.DataObject
) -> None:
    in_order = _read(pages, list(range(len(pages)))).done()
    arrival = data.draw(st.permutations(range(len(pages))))
    assert _read(pages, arrival).done() == in_order

    # The same pages under other numbers: the copies chosen and the warnings are the same.
    shuffled = data.draw(st.permutations(pages))
    renumbered = _read(shuffled, list(range(len(shuffled)))).done()
    assert {c.id: c for c in renumbered.counterparties} == {
        c.id: c for c in in_order.counterparties
    }
    assert sorted(renumbered.warnings, key=repr) == sorted(in_order.warnings, key=repr)

    # One count per account: no account id holds a position under two clients.
    positioned = [p.account_id for p in positions_of(in_order.counterparties)]
    assert len(positioned) == len(set(positioned))


@FAST
@given(balances=finqware_balances(), data=st.data())
def test_finqware_picks_the_same_figures_whatever_order_the_entries_come_in(
    balances: list[FinqwareBalance], data: st.DataObject
) -> None:
    def read(entries: list[FinqwareBalance]) -> tuple[list[Position], list[str]]:
        result = interpret_finqware(
            key="k",
            label=None,
            accounts=[],
            balances=entries,
            fetched_at=FETCHED_AT,
            orders=BalanceOrders.default(),
        )
        return positions_of(result.counterparties), sorted(w.message for w in result.warnings)

    assert read(data.draw(st.permutations(balances))) == read(balances)
