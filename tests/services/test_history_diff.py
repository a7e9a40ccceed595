"""The recorder's change-only rule (`diff`) and what it keeps between two loads: each account's
figures and a digest of its position JSON, never the JSON itself (the store has it)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from decimal import Decimal

from app.domain.interpret import Interpreted
from app.domain.models import Kind, Meaning, Side, Source, SourceStatus
from app.domain.snapshot import Account, Counterparty, Position, ReportedFigure
from app.services.history import KnownAccount, diff, position_record, record_digest
from app.store.history import HeldAccount

FETCHED = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def _position(account: str, amount: Decimal) -> Position:
    return Position(
        counterparty_id="finsync:7",
        counterparty_name="Ñandú Textil S.A.",
        kind=Kind.external,
        source=Source.finsync,
        account_id=account,
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


def _snapshot(first: Decimal, second: Decimal) -> Interpreted:
    positions = (_position("finsync:7:70", first), _position("finsync:7:71", second))
    counterparty = Counterparty(
        id="finsync:7",
        source=Source.finsync,
        kind=Kind.external,
        name="Ñandú Textil S.A.",
        description=None,
        accounts=tuple(
            Account(id=p.account_id, name="ARS", currency="ARS", position=p) for p in positions
        ),
        status=SourceStatus.ok,
        error=None,
    )
    return Interpreted((counterparty,), ())


def test_the_recorder_keeps_a_digest_of_each_position_not_its_json() -> None:
    value = _snapshot(Decimal("10.5"), Decimal("20"))
    found = diff({}, value)
    assert len(found.rows) == 2
    for row in found.rows:
        assert row.position is not None  # the JSON is written to the store
        known = found.held[row.key]
        assert known.digest == record_digest(row.position)
        assert len(known.digest) == 16
        assert not any(isinstance(kept, str) for kept in (known.seq, known.figures, known.digest))
        # The enumerations' own strings, shared by every account, not a copy each.
        assert known.figures.meaning is Meaning.receivable.value
        assert known.figures.side is Side.asset.value


def test_an_unchanged_account_is_not_written_again_and_a_changed_one_is() -> None:
    first = diff({}, _snapshot(Decimal("10.5"), Decimal("20")))
    held = {key: KnownAccount(3, known.figures, known.digest) for key, known in first.held.items()}
    same = diff(held, _snapshot(Decimal("10.5"), Decimal("20")))
    assert same.rows == ()
    assert same.held == held

    moved = diff(held, _snapshot(Decimal("10.5"), Decimal("21")))
    [row] = moved.rows
    assert row.account_id == "finsync:7:71"
    assert row.before is not None
    assert row.before.amount == Decimal("20")
    assert row.figures is not None
    assert row.figures.amount == Decimal("21")
    assert moved.held[row.key].seq == 0  # written with the next observation
    assert moved.held["finsync:7", "finsync:7:70", "ARS"].seq == 3


def test_accounts_read_back_from_the_store_compare_as_the_recorder_wrote_them() -> None:
    value = _snapshot(Decimal("10.5"), Decimal("20"))
    written = diff({}, value)
    # What the store gives back after a restart: the position JSON itself.
    stored = {
        row.key: HeldAccount(5, row.figures, row.position)
        for row in written.rows
        if row.figures is not None and row.position is not None
    }
    known = {key: KnownAccount.of(held) for key, held in stored.items()}
    assert diff(known, value).rows == ()
    position = value.counterparties[0].accounts[0].position
    assert position is not None
    key = (position.counterparty_id, position.account_id, position.currency)
    assert known[key].digest == record_digest(position_record(position))


def test_an_observations_rows_leave_nothing_for_the_collector_to_walk() -> None:
    # One row per account (70,000 at 50,000 clients) is held while an observation is made
    # and written: tracked, each full collection of a reload walked them all.
    positions = tuple(_position(f"finsync:7:{n}", Decimal(n)) for n in range(300))
    counterparty = Counterparty(
        id="finsync:7",
        source=Source.finsync,
        kind=Kind.external,
        name="Ñandú Textil S.A.",
        description=None,
        accounts=tuple(
            Account(id=p.account_id, name="ARS", currency="ARS", position=p) for p in positions
        ),
    )
    value = Interpreted((counterparty,), ())
    gc.collect()
    before = len(gc.get_objects())
    found = diff({}, value)
    gone = diff(
        {key: KnownAccount(3, k.figures, k.digest) for key, k in found.held.items()},
        Interpreted((), ()),
    )
    gc.collect()
    assert len(found.rows) == len(gone.rows) == 300
    assert not any(gc.is_tracked(row) for row in (*found.rows, *gone.rows))
    # What is left tracked of both is a handful of containers, not one object per row.
    assert len(gc.get_objects()) - before < 30
    assert found.rows[0].listed == ("external", "Ñandú Textil S.A.", "ARS")
