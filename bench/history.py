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
import functools
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app.domain import models
from app.domain.models import Kind, Meaning, Side, Source
from app.domain.observations import AccountFigures
from app.domain.positions import filter_positions, totals
from app.domain.snapshot import Position, ReportedFigure
from app.services.history import figures_of, position_record
from app.services.history_reads import HistoryReader
from app.store import history as history_store
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
            listed=(str(position.kind), position.counterparty_name, position.account_name),
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

    seconds, found = await cold(lambda reader: as_of_answer(reader, end))
    assert found == accounts
    figures["as_of_s"] = seconds
    print("as_of_s", seconds, flush=True)
    seconds, changes = await cold(
        lambda reader: reader.changes([SOURCE], end - timedelta(days=1), end, list)
    )
    figures["changes_s"] = seconds
    figures["changes_n"] = len(changes)
    print("changes_s", seconds, len(changes), flush=True)
    start = START + timedelta(minutes=30)
    days_ends = [START + timedelta(days=day) for day in range(1, days + 1)]
    reader = HistoryReader(HistoryStore.open(url), observe_seconds=lambda _: 3600.0)
    # Once kept: the same instant asked again (another page, another filter).
    await as_of_answer(reader, end)
    seconds, _ = await timed(lambda: as_of_answer(reader, end), 5)
    figures["as_of_kept_s"] = seconds
    figures["live_equivalent_s"] = await live_equivalent(reader, end)

    async def day_points() -> None:
        # What the route reads: the points from the totals, the gaps, the sources at the end.
        await reader.points_from_totals([SOURCE], start, days_ends)
        await reader.gaps([SOURCE], start, end, end)
        await reader.sources_at([SOURCE], end)

    await day_points()
    seconds, _ = await timed(day_points, 9)
    figures["points_totals_day_s"] = seconds
    hour_ends = [end - timedelta(hours=23 - hour) for hour in range(24)]
    seconds, _ = await timed(
        lambda: reader.points([SOURCE], end - timedelta(days=1), hour_ends, _filtered)
    )
    figures["points_filtered_s"] = seconds
    figures["bytes_per_change"], figures["mb_per_day"] = await size_per_change(
        reader.store, accounts, days
    )
    await reader.store.close()
    return figures


async def as_of_answer(reader: HistoryReader, instant: datetime, page_size: int = 100) -> int:
    """What `GET /positions?as_of=` does: the state, filtered, totalled, its first page
    decoded whole; the positions matched."""
    found = await reader.positions_at([SOURCE], instant)
    matching = filter_positions(found.positions.positions)
    totals(matching)
    await found.positions.full(reader.store, matching[:page_size])
    return len(matching)


async def live_equivalent(reader: HistoryReader, instant: datetime) -> float:
    """A live answer's own work over the same positions (kept in memory, fully built, as the
    live cache holds them): filtered, totalled, a page taken."""
    found = await reader.positions_at([SOURCE], instant)
    whole = await found.positions.full(reader.store, found.positions.positions)

    async def answer() -> None:
        matching = filter_positions(whole)
        totals(matching)
        _ = matching[:100]

    seconds, _ = await timed(answer, 5)
    return seconds


async def size_per_change(store: HistoryStore, accounts: int, days: int) -> tuple[float, float]:
    """Bytes per account change (indexes and checkpoints included) and MB per day."""
    changes = accounts + days * 24 * (accounts // 20)
    async with store.engine.connect() as connection:
        if store.engine.dialect.name == "postgresql":
            size = await connection.scalar(text("SELECT pg_database_size(current_database())"))
        else:
            pages = await connection.scalar(text("PRAGMA page_count"))
            page = await connection.scalar(text("PRAGMA page_size"))
            size = pages * page
    per_change = float(size) / changes
    return round(per_change), round(per_change * 24 * (accounts // 20) / 1e6, 1)


async def recording(url: str, accounts: int, batch: int | None) -> dict[str, float]:
    """/healthz's latency (polled every 10 ms, in the same process: what the event loop lets
    through) while history records the first observation of `accounts` accounts, through
    the real app: cache, recorder, store."""
    import httpx2

    from app.main import create_app
    from app.sandbox import create_finqware_app
    from app.sandbox.wiring import sandbox_transport
    from app.settings import Settings
    from bench.harness import percentile
    from bench.large import company, finsync_stand_in
    from tests.support.asgi import started

    if batch is not None:
        history_store.WRITE_BATCH = batch
    records = company(accounts * 2 // 3)
    transport = sandbox_transport(finsync_stand_in(records, 0.0), create_finqware_app())
    settings = Settings(
        _env_file=None,
        sandbox=True,
        sandbox_history_days=0,
        sandbox_moves_seconds=0,
        database_url=url,
        finsync_ttl_seconds=3600,
        finqware_ttl_seconds=3600,
        # A first load of 50,000 accounts on busy cores takes longer than a caller waits.
        upstream_timeout_seconds=120,
        upstream_deadline_seconds=300,
        request_deadline_seconds=300,
    )
    app = create_app(settings, transport=transport)
    figures: dict[str, float] = {}
    async with started(app) as running:
        asgi = httpx2.ASGITransport(app=running)
        async with httpx2.AsyncClient(
            transport=asgi, base_url="http://tesoro", timeout=600
        ) as http:
            recorder = app.state.history
            await recorder.flush()

            async def poll(into: list[float]) -> None:
                while True:
                    started_at = time.perf_counter()
                    answer = await http.get("/healthz")
                    assert answer.status_code == 200
                    into.append((time.perf_counter() - started_at) * 1000)
                    await asyncio.sleep(0.01)

            idle: list[float] = []
            task = asyncio.create_task(poll(idle))
            await asyncio.sleep(2)
            task.cancel()
            answer = await http.get("/positions?source=finsync&page_size=1")
            assert answer.status_code == 200, answer.text[:500]
            figures["accounts"] = answer.json()["total"]
            busy: list[float] = []
            task = asyncio.create_task(poll(busy))
            began = time.perf_counter()
            await recorder.flush()
            figures["record_s"] = time.perf_counter() - began
            task.cancel()
    figures["healthz_idle_p99_ms"] = percentile(idle, 0.99) or 0.0
    figures["healthz_recording_p99_ms"] = percentile(busy, 0.99) or 0.0
    figures["healthz_recording_max_ms"] = max(busy, default=0.0)
    figures["healthz_recording_n"] = len(busy)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--engine", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--only", choices=["reads", "recording"], default=None, help="one half of the bench"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="account rows per statement (recording)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    options = parser.parse_args()
    engines = ["sqlite", "postgresql"] if options.engine == "both" else [options.engine]
    results: dict[str, Any] = {"accounts": options.accounts, "days": options.days}

    def run(url: str, recording_url: Callable[[], str]) -> dict[str, float]:
        found: dict[str, float] = {}
        if options.only != "recording":
            found |= asyncio.run(measure(url, options.accounts, options.days))
            print("reads", found, flush=True)
        if options.only != "reads":
            found |= asyncio.run(recording(recording_url(), options.accounts, options.batch))
        return found

    for engine in engines:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                folder = Path(directory)
                result = run(
                    f"sqlite:///{folder / 'history.db'}",
                    functools.partial(str, f"sqlite:///{folder / 'recording.db'}"),
                )
        else:
            from tests.support.postgres import running_postgres

            with running_postgres() as server:
                result = run(server.url, lambda: empty_postgres(server.url))
        results[engine] = {name: round(value, 4) for name, value in result.items()}
        print(engine, results[engine], flush=True)
    if options.json is not None:
        options.json.write_text(json.dumps(results, indent=2) + "\n")


def empty_postgres(url: str) -> str:
    """`url`'s database emptied (the reads' history dropped) for the recording."""

    async def empty() -> None:
        store = HistoryStore.open(url)
        async with store.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await store.close()

    asyncio.run(empty())
    return url


if __name__ == "__main__":
    main()
