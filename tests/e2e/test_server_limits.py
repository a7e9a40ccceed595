"""tesoro's server over real sockets: a request head over 16 KiB is a 431, a head that does
not arrive in time closes the connection, and ordinary requests are untouched."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx2
import pytest

from app.main import create_app
from app.server import MAX_HEADER_BYTES, limited_protocol
from app.settings import Settings
from tests.support.servers import serve

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_SECONDS = 0.5


@pytest.fixture
def tesoro() -> Iterator[tuple[str, int]]:
    app = create_app(Settings(_env_file=None, sandbox=True))
    http = limited_protocol(header_timeout_seconds=HEADER_TIMEOUT_SECONDS)
    with serve(app, http=http) as url:
        parsed = httpx2.URL(url)
        assert parsed.port is not None
        yield parsed.host, parsed.port


def read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_head_over_16_kib_is_a_431_and_the_connection_closes(tesoro: tuple[str, int]) -> None:
    with socket.create_connection(tesoro, timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        # An unfinished header that keeps growing: answered as soon as it passes the limit.
        for _ in range(40):
            try:
                connection.sendall(b"a" * 1024)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = read_all(connection)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"type": "/problems/request-header-fields-too-large"' in answer


def test_many_headers_adding_up_past_the_limit_are_a_431(tesoro: tuple[str, int]) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(200))
    with socket.create_connection(tesoro, timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        answer = read_all(connection)
    assert len(headers) > MAX_HEADER_BYTES
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_just_under_the_limit_is_served(tesoro: tuple[str, int]) -> None:
    host, port = tesoro
    response = httpx2.get(
        f"http://{host}:{port}/healthz", headers={"X-Fill": "f" * 15_000}, timeout=10
    )
    assert response.status_code == 200


def test_a_trickling_head_is_closed_when_its_time_is_up(tesoro: tuple[str, int]) -> None:
    with socket.create_connection(tesoro, timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        for _ in range(40):  # one header byte every 0.05 s: never completes on its own
            try:
                connection.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.05)
            connection.settimeout(0.001)
            try:
                if connection.recv(1) == b"":
                    closed = True
                    break
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed = True
                break
    assert closed
    assert time.monotonic() - started >= HEADER_TIMEOUT_SECONDS


def test_keep_alive_requests_each_get_their_own_head_budget(tesoro: tuple[str, int]) -> None:
    host, port = tesoro
    with httpx2.Client(base_url=f"http://{host}:{port}", timeout=10) as client:
        for _ in range(5):  # 5 x 10 KiB heads on one connection: each is within the limit
            assert client.get("/healthz", headers={"X-Fill": "f" * 10_000}).status_code == 200


def resident_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_eight_unfinished_8_mib_heads_leave_memory_bounded_and_healthz_answering(
    tesoro: tuple[str, int],
) -> None:
    host, port = tesoro
    before = resident_bytes()
    connections = [socket.create_connection(tesoro, timeout=10) for _ in range(8)]
    try:
        for connection in connections:
            connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        chunk = b"a" * (256 * 1024)
        for _ in range(32):  # 8 MiB each, never finished
            for connection in connections:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    connection.sendall(chunk)
        # The server (in this process) kept at most the 16 KiB it counted of each; without
        # the limit the parser would buffer all 64 MiB.
        assert resident_bytes() - before < 32 * 1024 * 1024
        assert httpx2.get(f"http://{host}:{port}/healthz", timeout=10).status_code == 200
        for connection in connections:
            assert read_all(connection).startswith(b"HTTP/1.1 431 ")
    finally:
        for connection in connections:
            connection.close()
