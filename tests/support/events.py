"""Event streams in tests: an in-memory history (a stand-in for the recorder, the events'
collaborator), observations to put in it, and a reader of `text/event-stream` answers."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx2

from app.domain.observations import AccountChange, AccountFigures, Observation

MOMENT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def observation(
    seq: int,
    *,
    source: str = "finsync",
    accounts: dict[str, Decimal] | None = None,
    status: str = "ok",
    error_code: str | None = None,
) -> Observation:
    """An observation of `source` at `seq`: each account in `accounts` changed by its delta
    (from nothing); none, a status-only observation."""
    changes = tuple(
        AccountChange(
            counterparty_id=account.rsplit(":", 1)[0],
            account_id=account,
            currency="ARS",
            before=None,
            after=AccountFigures(
                counterparty_id=account.rsplit(":", 1)[0],
                account_id=account,
                currency="ARS",
                amount=delta,
                available=None,
                credit_line=None,
                meaning="cash",
                side="asset",
                as_of=None,
            ),
        )
        for account, delta in (accounts or {}).items()
    )
    totals: dict[str, Decimal] = {}
    for change in changes:
        totals["ARS"] = totals.get("ARS", Decimal(0)) + change.delta
    return Observation(
        seq=seq,
        source=source,
        version=f"v{seq}",
        fetched_at=MOMENT,
        observed_at=MOMENT,
        status=status,
        error_code=error_code,
        error_message=None if error_code is None else "FinSync did not answer",
        changes=changes,
        totals_delta=tuple(totals.items()),
    )


@dataclass
class Store:
    """What several replicas' histories share (one database): the observations by seq."""

    rows: list[Observation] = field(default_factory=list)
    first: int | None = None  # retention: nothing before it is kept


@dataclass
class MemoryLog:
    """One replica's history: reads the shared store; `write` stores an observation and
    tells this replica's listeners only, on the app's event loop (the server runs in its own
    thread), as the recorder does after a durable write."""

    store: Store = field(default_factory=Store)
    listeners: list[Callable[[Observation], None]] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def add_listener(self, listener: Callable[[Observation], None]) -> None:
        self.listeners.append(listener)
        self.loop = asyncio.get_running_loop()
        self.ready.set()

    def write(self, *observations: Observation) -> None:
        """Stored, then told to the listeners in one turn of the app's loop."""
        self.store.rows.extend(observations)
        assert self.ready.wait(10)
        assert self.loop is not None

        def tell() -> None:
            for item in observations:
                for listener in self.listeners:
                    listener(item)

        self.loop.call_soon_threadsafe(tell)

    def _kept(self) -> list[Observation]:
        first = self.store.first
        return sorted(
            (row for row in self.store.rows if first is None or row.seq >= first),
            key=lambda row: row.seq,
        )

    async def observations_after(self, seq: int, *, limit: int) -> list[Observation]:
        return [row for row in self._kept() if row.seq > seq][:limit]

    async def latest_seq(self) -> int | None:
        kept = self._kept()
        return kept[-1].seq if kept else None

    async def first_seq(self) -> int | None:
        kept = self._kept()
        return kept[0].seq if kept else None


@dataclass(frozen=True)
class Received:
    """One server-sent event as a client parses it."""

    id: str | None
    type: str
    data: dict[str, Any]


class EventReader:
    """Parses a streamed `text/event-stream` answer line by line, as EventSource does."""

    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self._lines: Iterator[str] = response.iter_lines()
        self.comments: list[str] = []

    def next_event(self, *, skip_comments: bool = True) -> Received | None:
        """The next event (None when the stream ended); with `skip_comments` False, a
        comment line first is returned as an event of type `comment`."""
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if fields:
                    return Received(
                        fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                    )
                continue
            if line.startswith(":"):
                self.comments.append(line)
                if not skip_comments:
                    return Received(None, "comment", {"text": line})
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        return None

    def events(self, count: int) -> list[Received]:
        found: list[Received] = []
        while len(found) < count:
            event = self.next_event()
            assert event is not None, f"the stream ended after {found}"
            found.append(event)
        return found
