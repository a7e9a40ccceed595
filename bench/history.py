"""History's read times at scale, against the store itself (no HTTP): one connection of
50,000 FinSync accounts observed every hour for N days (7 by default, to run in a few
minutes), 5% of the accounts changing each hour, on SQLite (a temporary file) and on
PostgreSQL (Debian's server, started as the tests start it).

Prints, per engine, how long the write took and the reads the issue measures: positions as
of an instant (cold: a fresh engine), the changes over the last 24 hours, daily points from
the totals over the whole window, and hourly points filtered finer than connections
(rebuilt from the accounts' rows) over the last 24 hours.

    .venv/bin/python -m bench.history [--accounts 50000] [--days 7] [--engine sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from app.domain import models
from app.domain.models import Kind, Meaning, Side, Source
from app.domain.observations import AccountFigures
from app.domain.positions import totals
from app.domain.snapshot import Position, ReportedFigure
from app.services.history import figures_of, position_record
from app.services.history_reads import HistoryReader
from app.store.history import AccountRow, HistoryStore, NewObservation

SOURCE = "finsync"
START = datetime(2026, 11, 1, tzinfo=UTC)


def _position(index: int, amount: Decimal, fetched_at: datetime) -> Position:
    side = Side.asset if amount > 0 else Side.liability if amount < 0 else Side.flat
    return Position(
        counterparty_id=f"finsync:{index // 4}",
        counterparty_name=f"Client {index // 4:06d}",
        kind=Kind.internal if index % 7 else Kind.external,
        source=Source.finsync,
        account_id=f"finsync:{index}",
        account_name=f"Account {index:06d}",
        currency="ARS" if index % 3 else "USD",
        amount=amount,
        side=side,
        meaning=Meaning.cash if amount >= 0 else Meaning.overdraft,
        reported=ReportedFigure(amount=amount),
        fetched_at=fetched_at,
    )


def _row(position: Position, before: AccountFigures | None) -> tuple[AccountRow, AccountFigures]:
    figures = figures_of(position)
    return (
        AccountRow(
            counterparty_id=position.counterparty_id,
            account_id=position.account_id,
            currency=position.currency,
            figures=figures,
            position=position_record(position),
            before=before,
            figures_changed=True,
        ),
        figures,
    )


async def build(store: HistoryStore, accounts: int, days: int) -> tuple[datetime, float]:
    """Write the history; its last instant and the seconds the writes took."""
    rng = random.Random(7)  # noqa: S311 -- a repeatable sample, not a secret
    amounts = [Decimal(rng.randrange(-10_000_00, 1_000_000_00)) / 100 for _ in range(accounts)]
    positions = [_position(index, amounts[index], START) for index in range(accounts)]
    held: dict[int, AccountFigures] = {}
    rows = []
    for index, position in enumerate(positions):
        row, held[index] = _row(position, None)
        rows.append(row)
    started = time.perf_counter()
    moment = START
    seq = 0

    async def write(rows: Sequence[AccountRow], at: datetime) -> None:
        nonlocal seq
        seq += 1
        await store.write(
            NewObservation(
                source=SOURCE,
                version=f"v{seq}",
                at=at,
                fetched_at=at,
                observed_at=at,
                status="ok",
                error_code=None,
                error_message=None,
                data=True,
                warnings=None,
                accounts=tuple(rows),
                totals=tuple(totals(positions)),
            )
        )

    await write(rows, moment)
    for _ in range(days * 24):
        moment += timedelta(hours=1)
        changed = []
        for index in rng.sample(range(accounts), accounts // 20):
            amounts[index] += Decimal(rng.randrange(-5_000_00, 5_000_00)) / 100
            positions[index] = _position(index, amounts[index], moment)
            row, figures = _row(positions[index], held[index])
            held[index] = figures
            changed.append(row)
        await write(changed, moment)
    return moment, time.perf_counter() - started


async def timed(call: Callable[[], Awaitable[Any]], repeat: int = 1) -> tuple[float, Any]:
    seconds = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def _filtered(positions: Sequence[models.Position]) -> list[models.Position]:
    return [position for position in positions if position.kind == Kind.internal]


async def measure(url: str, accounts: int, days: int) -> dict[str, float]:
    store = HistoryStore.open(url)
    await store.upgrade()
    end, wrote = await build(store, accounts, days)
    await store.close()
    figures: dict[str, float] = {"write_s": wrote}

    # Cold: a fresh engine (no connection, no statement cached) for each read.
    async def cold(read: Callable[[HistoryReader], Awaitable[Any]]) -> tuple[float, Any]:
        fresh = HistoryStore.open(url)
        try:
            reader = HistoryReader(fresh, observe_seconds=lambda _: 3600.0)
            return await timed(lambda: read(reader))
        finally:
            await fresh.close()

    seconds, found = await cold(lambda reader: reader.positions_at([SOURCE], end))
    assert len(found[0].positions) == accounts
    figures["as_of_s"] = seconds
    seconds, changes = await cold(
        lambda reader: reader.changes([SOURCE], end - timedelta(days=1), end, list)
    )
    figures["changes_s"] = seconds
    figures["changes_n"] = len(changes)
    start = START + timedelta(minutes=30)
    days_ends = [START + timedelta(days=day) for day in range(1, days + 1)]
    reader = HistoryReader(HistoryStore.open(url), observe_seconds=lambda _: 3600.0)
    seconds, _ = await timed(lambda: reader.points_from_totals([SOURCE], start, days_ends), 5)
    figures["points_totals_day_s"] = seconds
    hour_ends = [end - timedelta(hours=23 - hour) for hour in range(24)]
    seconds, _ = await timed(
        lambda: reader.points([SOURCE], end - timedelta(days=1), hour_ends, _filtered)
    )
    figures["points_filtered_s"] = seconds
    await reader.store.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    options = parser.parse_args()
    engines = ["sqlite", "postgresql"] if options.engine == "both" else [options.engine]
    for engine in engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                url = f"sqlite:///{Path(directory) / 'history.db'}"
                result = asyncio.run(measure(url, options.accounts, options.days))
        else:
            from tests.support.postgres import running_postgres

            with running_postgres() as server:
                result = asyncio.run(measure(server.url, options.accounts, options.days))
        print(engine, {name: round(value, 3) for name, value in result.items()}, flush=True)


if __name__ == "__main__":
    main()
