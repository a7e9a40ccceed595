"""Bounded work per caller over real sockets: one caller's requests in flight are limited
(429 with Retry-After), other callers and the probes are not, a client that goes away frees
its place at once; and a request the server cannot parse is a 400 problem, not text/plain."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import httpx2
import pytest

from app.server import limited_protocol
from tests.support.apps import sandbox_app
from tests.support.keys import READ_KEY, WRITE_KEY, bearer, reader_and_writer
from tests.support.servers import serve
from tests.support.simulators import Simulators

pytestmark = pytest.mark.e2e

LIMIT = 2
# FinSync answers this late: long enough for requests to be seen in flight.
SLOW_SECONDS = 3.0


@pytest.fixture
def simulators() -> Simulators:
    return Simulators.fresh()


@pytest.fixture
def tesoro(simulators: Simulators) -> Iterator[tuple[str, int]]:
    app = sandbox_app(simulators, api_keys=reader_and_writer(), caller_max_in_flight=LIMIT)
    with serve(app, http=limited_protocol()) as url:
        parsed = httpx2.URL(url)
        assert parsed.port is not None
        yield parsed.host, parsed.port


def send_request(address: tuple[str, int], path: str, key: str) -> socket.socket:
    """A GET sent on a connection of its own, its answer left unread."""
    connection = socket.create_connection(address, timeout=10)
    connection.sendall(
        f"GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {key}\r\n\r\n".encode()
    )
    return connection


def read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def wait_until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def finsync_reads(base: str) -> float:
    """Reads of FinSync that started or joined a load: one per slow request in flight."""
    text = httpx2.get(f"{base}/metrics", timeout=10).text
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("tesoro_cache_events_total{")
        and 'cache="finsync"' in line
        and ('outcome="miss"' in line or 'outcome="coalesced_wait"' in line)
    )


def test_one_caller_past_its_limit_is_a_429_while_others_and_probes_are_served(
    tesoro: tuple[str, int], simulators: Simulators
) -> None:
    host, port = tesoro
    base = f"http://{host}:{port}"
    simulators.finsync_faults.delay_seconds = SLOW_SECONDS
    slow = [send_request(tesoro, "/positions", READ_KEY) for _ in range(LIMIT)]
    try:
        wait_until(lambda: finsync_reads(base) >= LIMIT)
        over = httpx2.get(f"{base}/positions?source=finqware", headers=bearer(READ_KEY))
        assert over.status_code == 429
        assert over.headers["content-type"] == "application/problem+json"
        assert over.headers["retry-after"] == "1"
        assert over.json()["type"] == "/problems/too-many-requests"
        # Another key is another caller; the probes are never limited.
        other = httpx2.get(f"{base}/positions?source=finqware", headers=bearer(WRITE_KEY))
        assert other.status_code == 200
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert httpx2.get(f"{base}{probe}", headers=bearer(READ_KEY)).status_code == 200
        metrics = httpx2.get(f"{base}/metrics").text
        assert 'tesoro_requests_rejected_total{reason="caller_in_flight"} 1.0' in metrics
    finally:
        for connection in slow:
            connection.close()


def test_a_client_that_goes_away_frees_its_place_at_once(
    tesoro: tuple[str, int], simulators: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = tesoro
    base = f"http://{host}:{port}"
    # uvicorn's own loggers do not propagate to the root logger: listened to directly.
    server_log = logging.getLogger("uvicorn")
    server_log.addHandler(caplog.handler)
    simulators.finsync_faults.delay_seconds = SLOW_SECONDS
    slow = [send_request(tesoro, "/positions", READ_KEY) for _ in range(LIMIT)]
    wait_until(lambda: finsync_reads(base) >= LIMIT)
    refused = httpx2.get(f"{base}/positions?source=finqware", headers=bearer(READ_KEY))
    assert refused.status_code == 429
    started = time.monotonic()
    for connection in slow:
        connection.close()

    def admitted() -> bool:
        answer = httpx2.get(f"{base}/positions?source=finqware", headers=bearer(READ_KEY))
        return answer.status_code == 200

    wait_until(admitted, seconds=SLOW_SECONDS)
    # Well before FinSync answers the requests that were left: their places were freed.
    assert time.monotonic() - started < SLOW_SECONDS
    metrics = httpx2.get(f"{base}/metrics").text
    assert 'status="499"' in metrics
    server_log.removeHandler(caplog.handler)
    # The stopped reads are no error of tesoro's, nor of the server's.
    troubles = [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR
        or (record.name.startswith("uvicorn") and record.levelno >= logging.WARNING)
    ]
    assert troubles == []


def test_a_place_is_freed_when_the_answer_is_complete(tesoro: tuple[str, int]) -> None:
    host, port = tesoro
    with httpx2.Client(base_url=f"http://{host}:{port}", headers=bearer(READ_KEY)) as client:
        statuses = {client.get("/positions").status_code for _ in range(3 * LIMIT)}
    assert statuses == {200}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
        b"GET /he lthz HTTP/1.1\r\nHost: t\r\n\r\n",
        b"NOT-HTTP\r\n\r\n",
    ],
)
def test_a_request_that_cannot_be_parsed_is_a_400_problem(
    tesoro: tuple[str, int], request_bytes: bytes
) -> None:
    with socket.create_connection(tesoro, timeout=10) as connection:
        connection.sendall(request_bytes)
        answer = read_all(connection)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/problem+json" in head.lower()
    assert b'"type": "/problems/bad-request"' in body
    assert b'"status": 400' in body
