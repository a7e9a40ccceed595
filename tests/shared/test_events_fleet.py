"""Events across replicas: two tesoro processes' apps (each on its own loopback port) on one
real Redis; a change written by either replica reaches a stream on each, once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal

import httpx2
import pytest

from app.main import create_app
from app.services.events import CHANNEL
from app.settings import Settings
from tests.support.events import EventReader, MemoryLog, Received, Store, observation
from tests.support.redis import RedisServer
from tests.support.servers import serve
from tests.support.simulators import Simulators

pytestmark = pytest.mark.e2e


@contextmanager
def fleet(redis_server: RedisServer, store: Store) -> Iterator[list[tuple[MemoryLog, str]]]:
    """Two replicas sharing one history store and one Redis; each with its own recorder
    (a MemoryLog telling its own replica only, as the recorder that wrote does)."""
    simulators = Simulators.fresh()
    with ExitStack() as stack:
        replicas = []
        for _ in range(2):
            log = MemoryLog(store)
            settings = Settings(
                _env_file=None,
                sandbox=True,
                redis_url=redis_server.url,
                events_heartbeat_seconds=0.1,
            )
            app = create_app(settings, transport=simulators.transport(), observations=log)
            replicas.append((log, stack.enter_context(serve(app))))
        deadline = time.monotonic() + 10
        # Both hubs listen on the channel before anything is published.
        while b":2\r\n" not in redis_server.command("PUBSUB", "NUMSUB", CHANNEL):
            assert time.monotonic() < deadline, "the replicas never subscribed"
            time.sleep(0.05)
        yield replicas


def next_events(reader: EventReader, count: int) -> list[Received]:
    return reader.events(count)


def quiet(reader: EventReader, comments: int = 5) -> None:
    """Nothing but heartbeats for a while: no event came twice."""
    for _ in range(comments):
        event = reader.next_event(skip_comments=False)
        assert event is not None
        assert event.type == "comment", event


def test_a_change_on_either_replica_reaches_a_stream_on_each_once(
    redis_server: RedisServer,
) -> None:
    store = Store()
    with fleet(redis_server, store) as [(log_a, url_a), (log_b, url_b)], ExitStack() as stack:
        readers = []
        for url in (url_a, url_b):
            client = stack.enter_context(httpx2.Client(base_url=url, timeout=5))
            response = stack.enter_context(client.stream("GET", "/events"))
            assert response.status_code == 200
            reader = EventReader(response)
            first = reader.next_event(skip_comments=False)
            assert first is not None
            assert first.type == "comment"  # live
            readers.append(reader)
        log_a.write(observation(1, accounts={"finsync:101": Decimal("10.50")}))
        got = [next_events(reader, 2) for reader in readers]
        log_b.write(observation(2, accounts={"finsync:102": Decimal(-3)}))
        got = [seen + next_events(reader, 1) for seen, reader in zip(got, readers, strict=True)]
        for reader in readers:
            quiet(reader)
    for seen in got:
        assert [(event.type, event.id) for event in seen] == [
            ("source", "0"),
            ("positions", "1"),
            ("positions", "2"),
        ]
        assert seen[1].data["totals_delta"] == {"ARS": "10.50"}
        assert seen[2].data["changed_accounts"] == ["finsync:102"]


def test_a_stream_reconnecting_to_the_other_replica_is_replayed_from_the_shared_history(
    redis_server: RedisServer,
) -> None:
    store = Store()
    with fleet(redis_server, store) as [(log_a, _), (_, url_b)]:
        log_a.write(
            *(observation(seq, accounts={"finsync:101": Decimal(seq)}) for seq in (1, 2, 3))
        )
        with (
            httpx2.Client(base_url=url_b, timeout=5) as client,
            client.stream("GET", "/events", headers={"Last-Event-ID": "1"}) as response,
        ):
            reader = EventReader(response)
            events = reader.events(3)
    assert [(event.type, event.id) for event in events] == [
        ("source", "1"),
        ("positions", "2"),
        ("positions", "3"),
    ]
