"""`GET /events` over a real socket (uvicorn on a loopback port): events in order with ids,
replay by `Last-Event-ID` or `reset`, heartbeats, a slow reader reset and closed, the
subscriber limit, HEAD, no compression, consents, and the subscriber freed on disconnect.

History is the in-memory `MemoryLog` (tests/support/events.py), standing in for the recorder
the hub listens to and replays from."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx2
import pytest

from app.main import create_app
from app.sandbox.wiring import FINQWARE_SANDBOX_URL, FINSYNC_SANDBOX_URL
from app.settings import Settings
from tests.support.apps import upstream_settings
from tests.support.events import EventReader, MemoryLog, Store, observation
from tests.support.keys import READ_KEY, bearer, reader_and_writer
from tests.support.servers import serve
from tests.support.simulators import Simulators

pytestmark = pytest.mark.e2e

FAST = {"events_heartbeat_seconds": 0.2}


@contextmanager
def served(
    log: MemoryLog | None = None, settings: Settings | None = None, **overrides: Any
) -> Iterator[httpx2.Client]:
    """tesoro on the sandbox simulators, on a loopback port, with `log` as its history."""
    if settings is None:
        settings = Settings(_env_file=None, sandbox=True, **{**FAST, **overrides})
    app = create_app(settings, transport=Simulators.fresh().transport(), observations=log)
    with serve(app) as url, httpx2.Client(base_url=url, timeout=5) as client:
        yield client


@contextmanager
def stream(client: httpx2.Client, headers: dict[str, str] | None = None) -> Iterator[EventReader]:
    with client.stream("GET", "/events", headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        yield EventReader(response)


def ready(reader: EventReader) -> None:
    """Until the stream is live: its first heartbeat comes once it waits for events."""
    event = reader.next_event(skip_comments=False)
    assert event is not None
    assert event.type == "comment"


def test_changes_arrive_in_order_with_their_seq_as_id() -> None:
    log = MemoryLog()
    with served(log) as client, stream(client) as reader:
        ready(reader)
        log.write(
            observation(1, accounts={"finsync:101": Decimal("1520.50")}),
            observation(2, source="finqware:bt-main", status="unavailable", error_code="timeout"),
            observation(3, accounts={"finsync:101": Decimal("-0.25"), "finsync:102": Decimal(3)}),
        )
        events = reader.events(4)
    assert [(event.type, event.id) for event in events] == [
        # The first observation of a connection also says its state: the stream knew none.
        ("source", "0"),
        ("positions", "1"),
        ("source", "2"),
        ("positions", "3"),
    ]
    assert events[1].data == {
        "source": "finsync",
        "version": "v1",
        "fetched_at": "2026-12-01T09:30:00Z",
        "changed_accounts": ["finsync:101"],
        "totals_delta": {"ARS": "1520.50"},
    }
    assert events[2].data["status"] == "unavailable"
    assert events[2].data["error"] == {"code": "timeout", "message": "FinSync did not answer"}
    assert events[3].data["changed_accounts"] == ["finsync:101", "finsync:102"]
    assert events[3].data["totals_delta"] == {"ARS": "2.75"}


def test_a_reload_that_changes_nothing_sends_nothing_but_heartbeats() -> None:
    log = MemoryLog()
    with served(log) as client, stream(client) as reader:
        ready(reader)
        log.write(observation(1, accounts={"finsync:101": Decimal(1)}))
        assert [event.type for event in reader.events(2)] == ["source", "positions"]
        # Same state, new figures: only positions; then the state changes: only source.
        log.write(observation(2, accounts={"finsync:101": Decimal(2)}))
        log.write(observation(3, status="stale", error_code="timeout"))
        assert [(e.type, e.id) for e in reader.events(2)] == [("positions", "2"), ("source", "3")]
        event = reader.next_event(skip_comments=False)
    assert event is not None
    assert (event.type, event.data["text"]) == ("comment", ": keep-alive")


def test_last_event_id_replays_what_was_missed_then_goes_on_live() -> None:
    log = MemoryLog()
    log.store.rows.extend(
        observation(seq, accounts={f"finsync:{100 + seq}": Decimal(seq)}) for seq in range(1, 6)
    )
    with served(log) as client, stream(client, {"Last-Event-ID": "2"}) as reader:
        replayed = reader.events(4)
        log.write(observation(6, accounts={"finsync:106": Decimal(6)}))
        live = reader.events(2)
    assert [(event.type, event.id) for event in replayed] == [
        ("source", "2"),
        ("positions", "3"),
        ("positions", "4"),
        ("positions", "5"),
    ]
    assert replayed[1].data["changed_accounts"] == ["finsync:103"]
    # The hub had not seen this connection's state (the replay was this stream's alone): it
    # says it again before the figures.
    assert [(event.type, event.id) for event in live] == [("source", "5"), ("positions", "6")]


def test_an_id_history_no_longer_holds_is_a_reset_at_the_latest_position() -> None:
    log = MemoryLog(Store(first=4))
    log.store.rows.extend(
        observation(seq, accounts={"finsync:101": Decimal(seq)}) for seq in range(1, 8)
    )
    with served(log) as client:
        for sent, reason in (("1", "before_retention"), ("99", "unknown_id"), ("x1", "unknown_id")):
            with stream(client, {"Last-Event-ID": sent}) as reader:
                event = reader.next_event()
                assert event is not None
                assert (event.type, event.id, event.data) == ("reset", "7", {"reason": reason})
        # Still live after a reset: the client refetches and goes on from there.
        with stream(client, {"Last-Event-ID": "1"}) as reader:
            assert reader.events(1)[0].type == "reset"
            ready(reader)
            log.write(observation(8, accounts={"finsync:101": Decimal(8)}))
            assert [(e.type, e.id) for e in reader.events(2)] == [
                ("source", "7"),
                ("positions", "8"),
            ]


def test_without_history_a_last_event_id_is_a_reset() -> None:
    with served(None) as client, stream(client, {"Last-Event-ID": "5"}) as reader:
        event = reader.next_event()
    assert event is not None
    assert (event.type, event.data) == ("reset", {"reason": "history_off"})


def test_a_reader_that_cannot_keep_up_is_reset_and_closed() -> None:
    log = MemoryLog()
    with served(log, events_queue_size=3) as client:
        with stream(client) as reader:
            ready(reader)
            # Ten observations in one turn of the loop: the queue of three overflows before the
            # stream can write any of them.
            log.write(
                *(observation(seq, accounts={"finsync:101": Decimal(seq)}) for seq in range(1, 11))
            )
            event = reader.next_event()
            assert event is not None
            assert (event.type, event.data) == ("reset", {"reason": "slow_consumer"})
            assert reader.next_event() is None  # the answer ended
        metrics = client.get("/metrics").text
    assert 'tesoro_events_resets_total{reason="slow_consumer"} 1.0' in metrics
    assert 'tesoro_events_sent_total{type="reset"} 1.0' in metrics


def test_one_stream_past_the_limit_is_a_503_with_retry_after() -> None:
    with served(MemoryLog(), events_max_subscribers=1) as client:
        with stream(client) as reader:
            ready(reader)
            refused = client.get("/events")
            head = client.head("/events")
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["type"] == "/problems/too-many-streams"
        assert head.status_code == 503
        # The stream closed, its place is free again.
        deadline = time.monotonic() + 5
        while client.get("/metrics").text.count("tesoro_events_subscribers 0.0") == 0:
            assert time.monotonic() < deadline, "the subscriber was never freed"
            time.sleep(0.05)
        with stream(client) as reader:
            ready(reader)
        assert "tesoro_events_refused_total 2.0" in client.get("/metrics").text


def test_head_answers_the_stream_headers_at_once() -> None:
    with served(MemoryLog(), events_heartbeat_seconds=30) as client:
        started = time.monotonic()
        response = client.head("/events")
        elapsed = time.monotonic() - started
        assert "tesoro_events_subscribers 0.0" in client.get("/metrics").text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert elapsed < 2


def test_the_stream_is_never_compressed_nor_held_back() -> None:
    log = MemoryLog()
    with served(log) as client, stream(client, {"Accept-Encoding": "gzip, zstd"}) as reader:
        headers = reader.response.headers
        ready(reader)
        # A big event (over the 1 KB compression threshold) comes as it is, at once.
        accounts = {f"finsync:{n}": Decimal(n) for n in range(100, 300)}
        log.write(observation(1, accounts=accounts))
        events = reader.events(2)
    assert "content-encoding" not in headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["cache-control"] == "no-cache"
    assert "content-length" not in headers
    assert len(events[1].data["changed_accounts"]) == 200


def test_a_client_that_goes_away_frees_its_subscriber() -> None:
    with served(MemoryLog(), events_heartbeat_seconds=30) as client:
        with stream(client):
            deadline = time.monotonic() + 5
            while "tesoro_events_subscribers 1.0" not in client.get("/metrics").text:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        # Gone between heartbeats (30 s away): noticed by the disconnect, not a failed write.
        deadline = time.monotonic() + 5
        while "tesoro_events_subscribers 0.0" not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the subscriber was never freed"
            time.sleep(0.05)


def test_the_stream_needs_the_read_scope() -> None:
    with served(MemoryLog(), api_keys=reader_and_writer()) as client:
        assert client.get("/events").status_code == 401
        with stream(client, bearer(READ_KEY)) as reader:
            ready(reader)


def test_a_consent_in_its_last_14_days_is_told_at_once() -> None:
    now = datetime.now(UTC)
    expires = now + timedelta(days=3, hours=1)
    settings = upstream_settings(
        FINSYNC_SANDBOX_URL,
        FINQWARE_SANDBOX_URL,
        expiries={"bt-main": expires},
        auth_disabled=True,
        **FAST,
    )
    log = MemoryLog()
    log.store.rows.append(observation(4, accounts={"finsync:101": Decimal(1)}))
    with served(log, settings=settings) as client, stream(client) as reader:
        event = reader.next_event()
    assert event is not None
    assert (event.type, event.id) == ("consent", "4")
    assert event.data["source"] == "finqware:bt-main"
    assert event.data["days_left"] == 3
    assert event.data["expired"] is False
    assert event.data["expires_at"] == expires.isoformat().replace("+00:00", "Z")
    assert "finqware:bt-main" in event.data["message"]


def test_an_open_stream_holds_no_place_of_its_callers_in_flight_limit() -> None:
    with (
        served(MemoryLog(), caller_max_in_flight=1) as client,
        stream(client) as first,
        stream(client) as second,
    ):
        ready(first)
        ready(second)
        # Two streams open for hours, and the caller's one place is still free.
        assert client.get("/counterparties").status_code == 200


def test_every_kind_of_event_has_the_shape_the_spec_gives_it() -> None:
    now = datetime.now(UTC)
    settings = upstream_settings(
        FINSYNC_SANDBOX_URL,
        FINQWARE_SANDBOX_URL,
        expiries={"bt-main": now + timedelta(days=2)},
        auth_disabled=True,
        **FAST,
    )
    log = MemoryLog()
    with served(log, settings=settings) as client:
        spec = client.get("/openapi.json").json()
        with stream(client, {"Last-Event-ID": "7"}) as reader:
            received = reader.events(2)  # the reset (history is empty), then the consent
            ready(reader)
            log.write(
                observation(1, accounts={"finsync:101": Decimal("1.5")}),
                observation(2, status="unavailable", error_code="timeout"),
            )
            received += reader.events(3)
    answer = spec["paths"]["/events"]["get"]["responses"]["200"]
    schema = answer["content"]["text/event-stream"]["schema"]
    variants = {variant["title"]: variant for variant in schema["oneOf"]}
    assert [event.type for event in received] == [
        "reset",
        "consent",
        "source",
        "positions",
        "source",
    ]
    for event in received:
        assert event.type in schema["properties"]["event"]["enum"]
        assert event.id is not None
        assert event.id.isdigit()
        data = variants[event.type]["properties"]["data"]["contentSchema"]
        assert set(event.data) == set(data["required"]) == set(data["properties"]), event
    assert (
        received[0].data["reason"]
        in variants["reset"]["properties"]["data"]["contentSchema"]["properties"]["reason"]["enum"]
    )
