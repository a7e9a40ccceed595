"""Tests of one count per bank account across Finqware consents (app/domain/duplicates.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.duplicates import Counted, count_once
from app.domain.interpret import BalanceOrders, Interpreted, interpret_finqware, interpret_finsync
from app.domain.positions import positions_of, totals
from app.domain.snapshot import Counterparty
from app.upstreams.finqware import FinqwareAccount, FinqwareBalance
from app.upstreams.finsync import FinsyncClientRecord
from tests.support.interpreted import FETCHED_AT

IBAN = "RO43BTRLRONCRT0A56010101"


def consent(
    key: str,
    account_id: str,
    amount: str,
    *,
    iban: str | None = IBAN,
    when: str = "2026-05-04T09:00:00Z",
    currency: str = "RON",
    fetched_later: bool = False,
) -> Interpreted:
    """One consent reaching one bank account with one InterimBooked balance."""
    schemes = [] if iban is None else [{"scheme_name": "IBAN", "identification": iban}]
    listed = FinqwareAccount.model_validate(
        {"id": account_id, "data": {"name": "Cont curent", "account_schemes": schemes}}
    )
    entry = FinqwareBalance.model_validate(
        {
            "account_id": account_id,
            "id": f"{key}-{account_id}",
            "timestamp": "2026-05-04T09:30:00",
            "data": {
                "amount": amount,
                "credit_debit_indicator": "credit",
                "currency": currency,
                "native_timestamp": when,
                "type": "InterimBooked",
            },
        }
    )
    return interpret_finqware(
        key=key,
        label=None,
        accounts=[listed],
        balances=[entry],
        fetched_at=FETCHED_AT + timedelta(seconds=1 if fetched_later else 0),
        orders=BalanceOrders.default(),
    )


def ibans_of(consents: Sequence[Interpreted]) -> dict[tuple[str, str], str]:
    return {
        (interpreted.counterparties[0].id, account): iban
        for interpreted in consents
        for account, iban in interpreted.ibans
    }


def counted(*consents: Interpreted) -> Counted:
    return count_once([i.counterparties for i in consents], ibans_of(consents))


def every(result: Counted) -> list[Counterparty]:
    return [counterparty for part in result.parts for counterparty in part]


def positioned(result: Counted) -> list[tuple[str, str, Decimal]]:
    return [(p.counterparty_id, p.account_id, p.amount) for p in positions_of(every(result))]


def test_a_renewed_consent_counts_its_account_once_from_the_latest_balance() -> None:
    old = consent("bt-main", "old-id", "1000.00", when="2026-05-04T09:00:00Z")
    renewed = consent("bt-renewed", "new-id", "1250.50", when="2026-05-04T10:00:00Z")

    result = counted(old, renewed)

    assert positioned(result) == [("finqware:bt-renewed", "finqware:new-id", Decimal("1250.50"))]
    [ron] = totals(positions_of(every(result)))
    assert (ron.net, ron.assets, ron.cash) == (Decimal("1250.50"),) * 3
    # The old consent still lists the account, without a position.
    old_accounts = result.parts[0][0].accounts
    assert [(a.id, a.position) for a in old_accounts] == [("finqware:old-id", None)]
    [warning] = result.warnings
    assert (warning.code, warning.source, warning.counterparty_id, warning.account_id) == (
        "duplicate_account",
        "finqware:bt-main",
        "finqware:bt-main",
        "finqware:old-id",
    )
    for named in ("finqware:bt-main", "finqware:old-id", "finqware:bt-renewed", "finqware:new-id"):
        assert named in warning.message
    assert f"IBAN {IBAN}, RON" in warning.message
    assert "whose balance is the latest" in warning.message


def test_the_choice_does_not_depend_on_the_order_of_the_consents() -> None:
    old = consent("bt-main", "old-id", "1000.00", when="2026-05-04T11:00:00Z")
    renewed = consent("bt-renewed", "new-id", "1250.50", when="2026-05-04T10:00:00Z")

    forward, backward = counted(old, renewed), counted(renewed, old)

    # Here the old consent's balance is the later one: it is the copy counted.
    assert (
        positioned(forward)
        == positioned(backward)
        == [("finqware:bt-main", "finqware:old-id", Decimal("1000.00"))]
    )
    assert forward.warnings == backward.warnings


def test_a_balance_of_the_same_moment_counts_from_the_copy_fetched_last_then_by_key() -> None:
    fetched_last = counted(
        consent("a-first", "x", "5", fetched_later=False),
        consent("b-second", "y", "5", fetched_later=True),
    )
    assert [p[0] for p in positioned(fetched_last)] == ["finqware:b-second"]
    assert "fetched last" in fetched_last.warnings[0].message

    by_key = counted(consent("b-second", "y", "5"), consent("a-first", "x", "5"))
    assert [p[0] for p in positioned(by_key)] == ["finqware:a-first"]
    assert "first by consent key" in by_key.warnings[0].message


def test_the_same_finqware_account_id_under_two_consents_is_one_account_without_an_iban() -> None:
    result = counted(
        consent("bt-main", "same-id", "10", iban=None, when="2026-05-04T08:00:00Z"),
        consent("bt-renewed", "same-id", "12", iban=None),
    )
    assert positioned(result) == [("finqware:bt-renewed", "finqware:same-id", Decimal("12"))]
    assert [w.code for w in result.warnings] == ["duplicate_account"]


def test_ibans_are_compared_without_spaces_or_case_and_only_within_one_currency() -> None:
    spaced = consent("bt-main", "a", "10", iban="ro43 btrl roncrt0a56010101")
    renewed = consent("bt-renewed", "b", "12", when="2026-05-04T10:00:00Z")
    assert [p[1] for p in positioned(counted(spaced, renewed))] == ["finqware:b"]

    # A multi-currency account has one IBAN and a balance per currency: not duplicates.
    in_eur = consent("bt-renewed", "b", "12", currency="EUR")
    assert counted(spaced, in_eur).warnings == []
    assert len(positioned(counted(spaced, in_eur))) == 2


def test_different_bank_accounts_and_other_connections_pass_through_untouched() -> None:
    other = consent("ing-ops", "ing-id", "7", iban="RO21INGB0000999901234567")
    finsync = interpret_finsync(
        [
            FinsyncClientRecord.model_validate(
                {
                    "id": 1,
                    "name": "Caja",
                    "type": 0,
                    "accounts": [{"id": 2, "currency_name": "RON", "balance": 3}],
                }
            )
        ],
        fetched_at=FETCHED_AT,
    )
    parts = [
        finsync.counterparties,
        consent("bt-main", "old-id", "1").counterparties,
        other.counterparties,
    ]

    result = count_once(parts, {})

    assert result.warnings == []
    assert all(kept is given for kept, given in zip(result.parts, parts, strict=True))


def test_a_copy_with_a_position_is_counted_before_one_without() -> None:
    broken = consent("bt-renewed", "new-id", "-5", when="2026-05-04T12:00:00Z")
    assert [w.code for w in broken.warnings] == ["invalid_amount"]
    result = counted(consent("bt-main", "old-id", "1"), broken)
    assert positioned(result) == [("finqware:bt-main", "finqware:old-id", Decimal("1"))]
    assert "the only one with a balance" in result.warnings[0].message


@st.composite
def consents(draw: st.DrawFn) -> list[Interpreted]:
    """Two or three consents reaching accounts drawn from a small pool of ids and IBANs, so
    that some are the same bank account by id, by IBAN or both."""
    found = []
    for key in draw(st.lists(st.sampled_from(["k1", "k2", "k3"]), min_size=2, unique=True)):
        refs = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=3, unique=True))
        listed, entries = [], []
        for ref in refs:
            iban = draw(st.sampled_from([None, "RO01", "RO02"]))
            schemes = [] if iban is None else [{"scheme_name": "IBAN", "identification": iban}]
            listed.append(
                FinqwareAccount.model_validate({"id": ref, "data": {"account_schemes": schemes}})
            )
            entries.append(
                FinqwareBalance.model_validate(
                    {
                        "account_id": ref,
                        "id": f"{key}-{ref}",
                        "timestamp": "2026-05-04T09:30:00",
                        "data": {
                            "amount": draw(st.sampled_from(["1", "2.5", "0"])),
                            "credit_debit_indicator": "credit",
                            "currency": draw(st.sampled_from(["RON", "EUR"])),
                            "native_timestamp": f"2026-05-04T{draw(st.integers(8, 10)):02}:00:00Z",
                            "type": "InterimBooked",
                        },
                    }
                )
            )
        found.append(
            interpret_finqware(
                key=key,
                label=None,
                accounts=listed,
                balances=entries,
                fetched_at=FETCHED_AT,
                orders=BalanceOrders.default(),
            )
        )
    return found


@settings(max_examples=300, deadline=None)
@given(drawn=consents(), data=st.data())
def test_no_bank_account_is_counted_under_two_consents_whatever_their_order(
    drawn: list[Interpreted], data: st.DataObject
) -> None:
    result = counted(*drawn)
    again = counted(*data.draw(st.permutations(drawn)))
    assert sorted(positioned(again)) == sorted(positioned(result))
    assert sorted(again.warnings, key=repr) == sorted(result.warnings, key=repr)

    ibans = ibans_of(drawn)
    counted_positions = positions_of(every(result))
    for one in counted_positions:
        for other in counted_positions:
            if one.counterparty_id == other.counterparty_id or one.currency != other.currency:
                continue
            assert one.account_id != other.account_id
            mine = ibans.get((one.counterparty_id, one.account_id))
            assert mine is None or mine != ibans.get((other.counterparty_id, other.account_id))
