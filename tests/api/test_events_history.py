"""`GET /events` on the real history recorder and its SQLite store, over a real socket: a
balance that moves upstream reaches an open stream as a `positions` event whose id is the
stored observation's `seq`, and a stream that reconnects with `Last-Event-ID` is replayed
from the store what it missed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from tests.support.apps import sandbox_app
from tests.support.events import EventReader, Received
from tests.support.servers import serve
from tests.support.simulators import Simulators

pytestmark = pytest.mark.e2e

REFRESH = {"Cache-Control": "no-cache"}


@contextmanager
def served(simulators: Simulators, tmp_path: Path) -> Iterator[httpx2.Client]:
    app = sandbox_app(
        simulators,
        history_enabled=True,
        database_url=f"sqlite:///{tmp_path / 'history.db'}",
        min_refresh_interval_seconds=0,
        events_heartbeat_seconds=0.2,
    )
    with serve(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        yield client


def finsync_positions(reader: EventReader) -> Received:
    """The next `positions` event of FinSync (the banks are observed on their own too)."""
    while True:
        event = reader.next_event()
        assert event is not None, "the stream ended"
        if event.type == "positions" and event.data["source"] == "finsync":
            return event


def test_a_balance_that_moves_is_an_event_and_a_reconnect_is_replayed_from_the_store(
    tmp_path: Path,
) -> None:
    simulators = Simulators.fresh()
    with served(simulators, tmp_path) as client:
        with client.stream("GET", "/events") as response:
            reader = EventReader(response)
            assert client.get("/positions", params={"source": "finsync"}).status_code == 200
            first = finsync_positions(reader)  # every account: the first observation
            assert "finsync:901" in first.data["changed_accounts"]
            simulators.finsync.state.store.set_balance(901, "2000.75")
            client.get("/positions", params={"source": "finsync"}, headers=REFRESH)
            live = finsync_positions(reader)
        assert live.id is not None
        assert live.data["changed_accounts"] == ["finsync:901"]
        assert live.data["totals_delta"] == {"ARS": "480.25"}

        # The balance moves again, seen by another stream only (so it is stored by then).
        with client.stream("GET", "/events") as response:
            reader = EventReader(response)
            simulators.finsync.state.store.set_balance(901, "10.00")
            client.get("/positions", params={"source": "finsync"}, headers=REFRESH)
            missed = finsync_positions(reader)
        # The first stream comes back: what it missed can only come from the store.
        with client.stream("GET", "/events", headers={"Last-Event-ID": live.id}) as response:
            replayed = finsync_positions(EventReader(response))
    assert replayed.id == missed.id
    assert replayed.id is not None
    assert int(replayed.id) > int(live.id)
    assert replayed.data["changed_accounts"] == ["finsync:901"]
    assert replayed.data["totals_delta"] == {"ARS": "-1990.75"}
