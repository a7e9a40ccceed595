"""`X-Request-ID` is accepted or made, echoed, and forwarded to the upstreams."""

from __future__ import annotations

import httpx2
from starlette.testclient import TestClient

from tests.support.apps import sandbox_app
from tests.support.keys import READ_KEY, WRITE_KEY, reader_and_writer
from tests.support.simulators import Simulators


class Recording(httpx2.AsyncBaseTransport):
    """The sandbox transport, noting the request id of every upstream call."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[str | None] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.seen.append(request.headers.get("x-request-id"))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_request_id_is_echoed_and_sent_on_every_upstream_call() -> None:
    recording = Recording(Simulators.fresh().transport())
    with TestClient(sandbox_app(transport=recording)) as client:
        response = client.get("/positions?source=finsync", headers={"X-Request-ID": "req-42"})
    assert response.headers["x-request-id"] == "req-42"
    assert recording.seen
    assert set(recording.seen) == {"req-42"}


def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(client: TestClient) -> None:
    made = client.get("/healthz").headers["x-request-id"]
    unsafe = client.get("/healthz", headers={"X-Request-ID": "a b\tc"}).headers["x-request-id"]
    assert len(made) == 32
    assert unsafe not in (made, "a b\tc")
    # Refusals carry one too.
    assert "x-request-id" in client.get("/nope").headers


def test_a_caller_key_sent_as_a_request_id_is_neither_echoed_nor_forwarded() -> None:
    recording = Recording(Simulators.fresh().transport())
    app = sandbox_app(transport=recording, api_keys=reader_and_writer())
    with TestClient(app) as client:
        response = client.get(
            "/positions?source=finsync",
            headers={"Authorization": f"Bearer {READ_KEY}", "X-Request-ID": WRITE_KEY},
        )
    assert response.status_code == 200
    assert response.headers["x-request-id"] != WRITE_KEY
    assert len(response.headers["x-request-id"]) == 32
    assert recording.seen
    assert WRITE_KEY not in recording.seen
