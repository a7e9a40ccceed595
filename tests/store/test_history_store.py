"""The history store on real SQLite and real PostgreSQL: migrations applied once, an
observation written once, a connection's state at any instant, and retention."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.domain.models import CurrencyTotal
from app.domain.observations import AccountFigures
from app.store.history import AccountRow, ChangedRow, HistoryStore, NewObservation
from app.store.migrate import head_revision
from app.store.tables import checkpoints
from app.store.urls import DatabaseUrlError, async_url, shown

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def figures(account: str, amount: str, *, currency: str = "ARS") -> AccountFigures:
    value = Decimal(amount)
    return AccountFigures(
        counterparty_id="finsync:1",
        account_id=account,
        currency=currency,
        amount=value,
        available=None,
        credit_line=None,
        meaning="cash" if value >= 0 else "overdraft",
        side="asset" if value > 0 else ("liability" if value < 0 else "flat"),
        as_of=T0,
    )


def row(after: AccountFigures | None, before: AccountFigures | None = None) -> AccountRow:
    either = after or before
    assert either is not None
    return AccountRow(
        either.counterparty_id,
        either.account_id,
        either.currency,
        figures=after,
        position=None if after is None else f'{{"amount":"{after.amount}"}}',
        before=before,
        figures_changed=True,
    )


def observation(
    version: str, at: datetime, *rows: AccountRow, source: str = "finsync"
) -> NewObservation:
    return NewObservation(
        source=source,
        version=version,
        at=at,
        fetched_at=at,
        observed_at=at,
        status="ok",
        error_code=None,
        error_message=None,
        data=True,
        warnings="[]",
        accounts=rows,
        totals=(
            CurrencyTotal(
                currency="ARS",
                assets=Decimal("1.00"),
                liabilities=Decimal("0.00"),
                net=Decimal("1.00"),
                cash=Decimal("1.00"),
                overdraft=Decimal("0.00"),
                receivable=Decimal("0.00"),
                payable=Decimal("0.00"),
            ),
        ),
    )


async def test_migrations_reach_head_once_even_when_replicas_start_together(
    database_url: str,
) -> None:
    stores = [HistoryStore.open(database_url) for _ in range(3)]
    try:
        outcomes = await asyncio.gather(*(store.upgrade() for store in stores))
        # Exactly one replica migrated from an empty store; the others found it at head.
        assert sorted(outcomes, key=str) == sorted(
            [
                (None, head_revision()),
                (head_revision(), head_revision()),
                (head_revision(), head_revision()),
            ],
            key=str,
        )
        assert await stores[0].upgrade() == (head_revision(), head_revision())
    finally:
        for store in stores:
            await store.close()


async def test_an_observation_is_written_once_whoever_writes_it(database_url: str) -> None:
    replicas = [HistoryStore.open(database_url) for _ in range(2)]
    try:
        await replicas[0].upgrade()
        new = observation("v1", T0, row(figures("101", "10.50")))
        seqs = await asyncio.gather(*(replica.write(new) for replica in replicas))
        assert sorted(seqs, key=lambda seq: seq is None)[1] is None
        assert [seq for seq in seqs if seq is not None] == [await replicas[1].latest_seq()]
        replayed = await replicas[1].observations_after(0, limit=10)
        assert len(replayed) == 1
        assert [change.after for change in replayed[0].changes] == [figures("101", "10.50")]
    finally:
        for replica in replicas:
            await replica.close()


async def test_the_state_at_an_instant_is_the_latest_row_of_each_account(
    store: HistoryStore,
) -> None:
    first = await store.write(
        observation("v1", T0, row(figures("101", "10.50")), row(figures("102", "-3.25")))
    )
    second = await store.write(
        observation(
            "v2",
            T0 + timedelta(hours=1),
            row(figures("101", "12.00"), figures("101", "10.50")),
            row(None, figures("102", "-3.25")),
        )
    )
    assert first is not None
    assert second is not None

    before = await store.state_at("finsync", T0 - timedelta(seconds=1))
    assert before is None
    at_first = await store.state_at("finsync", T0 + timedelta(minutes=59))
    assert at_first is not None
    assert at_first.data is not None
    assert at_first.data.seq == first
    assert {key: held.figures.amount for key, held in at_first.accounts.items()} == {
        ("finsync:1", "101", "ARS"): Decimal("10.50"),
        ("finsync:1", "102", "ARS"): Decimal("-3.25"),
    }
    now = await store.current("finsync")
    assert now is not None
    assert {key: str(held.figures.amount) for key, held in now.accounts.items()} == {
        ("finsync:1", "101", "ARS"): "12.00"
    }
    # Instants come back as they went in: aware, in UTC, to the microsecond.
    assert now.last.at == T0 + timedelta(hours=1)
    assert now.last.at.tzinfo is UTC


async def test_the_records_at_an_instant_are_the_latest_present_position_of_each_account(
    store: HistoryStore,
) -> None:
    await store.write(
        observation("v1", T0, row(figures("101", "10.50")), row(figures("102", "-3.25")))
    )
    await store.write(
        observation(
            "v2",
            T0 + timedelta(hours=1),
            row(figures("101", "12.00"), figures("101", "10.50")),
            row(None, figures("102", "-3.25")),
            row(figures("103", "7")),
        )
    )
    # Another connection's rows never mix in.
    await store.write(observation("w1", T0, row(figures("101", "99")), source="bank"))

    assert await store.records_at("finsync", T0 - timedelta(seconds=1)) is None
    at_first = await store.records_at("finsync", T0 + timedelta(minutes=59))
    assert at_first is not None
    assert at_first.data is not None
    assert sorted(at_first.records) == ['{"amount":"-3.25"}', '{"amount":"10.50"}']
    later = await store.records_at("finsync", T0 + timedelta(hours=2))
    assert later is not None
    assert sorted(later.records) == ['{"amount":"12.00"}', '{"amount":"7"}']


async def test_the_accounts_changed_since_an_observation_are_read_with_their_figures_then(
    store: HistoryStore,
) -> None:
    first = await store.write(
        observation(
            "v1",
            T0,
            row(figures("101", "10.50")),
            row(figures("102", "-3.25")),
            row(figures("104", "1")),
        )
    )
    second = await store.write(
        observation("v2", T0 + timedelta(hours=1), row(figures("104", "2"), figures("104", "1")))
    )
    await store.write(
        observation(
            "v3",
            T0 + timedelta(hours=2),
            row(figures("101", "12.00"), figures("101", "10.50")),
            row(figures("103", "7")),
        )
    )
    await store.write(
        observation(
            "v4",
            T0 + timedelta(hours=3),
            row(figures("101", "13"), figures("101", "12.00")),
            row(None, figures("102", "-3.25")),
        )
    )
    assert first is not None
    assert second is not None

    def seen(rows: list[ChangedRow]) -> dict[str, tuple[str | None, str | None, datetime]]:
        return {
            row.key[1]: (
                None if row.before is None else str(row.before),
                None if row.after is None else str(row.after),
                row.changed_at,
            )
            for row in rows
        }

    # 101 changed (its figures before the first change, after the last), 103 appeared, 102
    # vanished only after `until`; 104 changed before `second` and not since: not read.
    changed = await store.changed_between("finsync", second, T0 + timedelta(hours=2))
    assert seen(changed) == {
        "101": ("10.50", "12.00", T0 + timedelta(hours=2)),
        "103": (None, "7", T0 + timedelta(hours=2)),
    }
    changed = await store.changed_between("finsync", second, T0 + timedelta(hours=3))
    assert seen(changed) == {
        "101": ("10.50", "13", T0 + timedelta(hours=3)),
        "102": ("-3.25", None, T0 + timedelta(hours=3)),
        "103": (None, "7", T0 + timedelta(hours=2)),
    }
    assert await store.changed_between("bank", second, T0 + timedelta(hours=3)) == []


async def test_a_state_read_through_daily_checkpoints_is_the_state_from_every_row(
    store: HistoryStore,
) -> None:
    # Four days, a few changes each: each day's first observation writes a checkpoint, and
    # an instant is answered from the latest checkpoint before it and the rows since.
    expected: dict[str, str] = {}
    states: list[tuple[datetime, dict[str, str]]] = []
    held: dict[str, AccountFigures] = {}
    for step in range(16):
        at = T0 + timedelta(hours=7 * step)
        rows = []
        for account in (f"{100 + step % 5}", f"{100 + (step * 3) % 7}"):
            if account in expected and step % 4 == 3:
                rows.append(row(None, held.pop(account)))
                del expected[account]
                continue
            amount = f"{step}.{account}"
            if expected.get(account) == amount:
                continue
            new = figures(account, amount)
            rows.append(row(new, held.get(account)))
            held[account], expected[account] = new, amount
        await store.write(observation(f"v{step}", at, *rows))
        states.append((at, dict(expected)))
    async with store.engine.connect() as connection:
        days = await connection.scalar(select(func.count()).select_from(checkpoints))
    assert days == len({at.date() for at, _ in states})

    async def every_state_read_back(kept: list[tuple[datetime, dict[str, str]]]) -> None:
        for at, state in kept:
            for moment in (at, at + timedelta(hours=6)):
                found = await store.records_at("finsync", moment)
                assert found is not None
                assert sorted(found.records) == sorted(
                    f'{{"amount":"{amount}"}}' for amount in state.values()
                )
                now = await store.state_at("finsync", moment)
                assert now is not None
                assert {key[1]: str(a.figures.amount) for key, a in now.accounts.items()} == state

    await every_state_read_back(states)
    # Retention moves the accounts' rows onto the cut: the later checkpoints follow them.
    assert await store.prune(states[9][0] + timedelta(minutes=1)) > 0
    await every_state_read_back(states[9:])


async def test_exact_decimals_survive_the_store(store: HistoryStore) -> None:
    huge = "123456789012345678901234567890.123456789"
    await store.write(observation("v1", T0, row(figures("101", huge))))
    state = await store.current("finsync")
    assert state is not None
    assert str(state.accounts["finsync:1", "101", "ARS"].figures.amount) == huge


async def test_retention_forgets_the_old_observations_but_not_the_state_they_built(
    store: HistoryStore,
) -> None:
    await store.write(
        observation("v1", T0, row(figures("101", "1.00")), row(figures("102", "2.00")))
    )
    await store.write(
        observation(
            "v2", T0 + timedelta(days=1), row(figures("101", "5.00"), figures("101", "1.00"))
        )
    )
    await store.write(
        observation(
            "v3", T0 + timedelta(days=3), row(figures("102", "7.00"), figures("102", "2.00"))
        )
    )
    deleted = await store.prune(T0 + timedelta(days=2))
    assert deleted == 1
    assert await store.first_at(["finsync"]) == {"finsync": T0 + timedelta(days=1)}
    kept = await store.state_at("finsync", T0 + timedelta(days=2))
    assert kept is not None
    assert {key[1]: str(held.figures.amount) for key, held in kept.accounts.items()} == {
        "101": "5.00",
        "102": "2.00",
    }
    latest = await store.current("finsync")
    assert latest is not None
    assert {key[1]: str(held.figures.amount) for key, held in latest.accounts.items()} == {
        "101": "5.00",
        "102": "7.00",
    }


async def test_gaps_and_runs_are_read_back_in_a_window(store: HistoryStore) -> None:
    await store.record_gap("finsync", T0, T0 + timedelta(minutes=30), "store_unavailable", 4)
    await store.run_seen("run-a", T0, T0 + timedelta(hours=1))
    await store.run_seen("run-a", T0, T0 + timedelta(hours=2))
    gaps = await store.gaps_between(["finsync"], T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert [(gap.started_at, gap.ended_at, gap.reason) for gap in gaps] == [
        (T0, T0 + timedelta(minutes=30), "store_unavailable")
    ]
    assert await store.runs_between(T0, T0 + timedelta(days=1)) == [(T0, T0 + timedelta(hours=2))]


def test_urls_get_their_async_driver_and_never_show_the_password() -> None:
    assert str(async_url("sqlite:///tesoro.db")) == "sqlite+aiosqlite:///tesoro.db"
    assert async_url("postgresql://u:pw@db/tesoro").drivername == "postgresql+asyncpg"
    assert shown("postgresql://u:hunter2@db:5432/tesoro") == "postgresql://u:***@db:5432/tesoro"
    with pytest.raises(DatabaseUrlError) as refused:
        async_url("mysql://u:hunter2@db/tesoro")
    assert "hunter2" not in str(refused.value)


async def test_a_store_that_cannot_be_reached_says_so_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.support.servers import free_port

    url = f"postgresql://tesoro:hunter2-secret@127.0.0.1:{free_port()}/tesoro"
    store = HistoryStore.open(url)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(OSError, match=r"Connect call failed|refused") as failed:
            await store.ping()
        assert "hunter2-secret" not in str(failed.value)
    finally:
        await store.close()
    assert "hunter2-secret" not in caplog.text
