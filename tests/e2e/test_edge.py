"""The HTTP edge over real sockets: bodies limited however they are sent, the caller known
before the body is read, HEAD on every GET route, and no redirect built from `Host`."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx2
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.keys import WRITE_KEY, bearer, reader_and_writer
from tests.support.servers import serve

pytestmark = pytest.mark.e2e


@pytest.fixture
def tesoro_url() -> Iterator[str]:
    settings = Settings(_env_file=None, sandbox=True, api_keys=reader_and_writer())
    with serve(create_app(settings)) as url:
        yield url


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send bytes as written and read the whole answer (the server closes or we stop)."""
    host, port = httpx2.URL(url).host, httpx2.URL(url).port
    assert port is not None
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_chunked_body_over_64_kib_is_a_413_problem(tesoro_url: str) -> None:
    # Sent whole before the answer is read, as raw HTTP: 66 chunks of 1 KiB, no length.
    chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(66)) + b"0\r\n\r\n"
    answer = raw_exchange(
        tesoro_url,
        b"POST /counterparties HTTP/1.1\r\nHost: tesoro\r\n"
        + f"Authorization: Bearer {WRITE_KEY}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks,
    )
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"413", head
    assert b"content-type: application/problem+json" in head.lower()
    assert b'"type":"/problems/content-too-large"' in body


def test_a_malformed_body_from_nobody_is_a_401_not_a_422(tesoro_url: str) -> None:
    response = httpx2.post(
        f"{tesoro_url}/counterparties",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["type"] == "/problems/unauthorized"
    assert response.headers["www-authenticate"] == 'Bearer realm="tesoro"'


def test_head_answers_every_get_route_with_its_headers_and_no_body(tesoro_url: str) -> None:
    with httpx2.Client(base_url=tesoro_url, headers=bearer(WRITE_KEY), timeout=10) as client:
        for path in (
            "/healthz",
            "/readyz",
            "/metrics",
            "/positions",
            "/counterparties",
            "/counterparties/finsync:101",
            "/openapi.json",
        ):
            got = client.get(path)
            head = client.head(path)
            assert head.status_code == got.status_code == 200, path
            assert head.content == b""
            assert head.headers["content-type"] == got.headers["content-type"], path
            if "etag" in got.headers:
                assert head.headers["etag"] == got.headers["etag"]
        metrics = client.get("/metrics").text
    # Counted as the HEAD it was, under its route template.
    assert 'method="HEAD",route="/positions",status="200"' in metrics


def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_host_sent(tesoro_url: str) -> None:
    host = httpx2.URL(tesoro_url).host
    port = httpx2.URL(tesoro_url).port
    answer = raw_exchange(
        tesoro_url,
        b"GET /positions/ HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.endswith(b"404 Not Found"), status_line
    assert b"evil.example" not in answer
    assert f"{host}:{port}".encode() not in answer.split(b"\r\n\r\n", 1)[0]
