"""Looking up a counterparty by id costs nothing twice: a fresh list answers for itself, a
miss is remembered, one id is asked once at a time, and look-ups never take the whole pool."""

from __future__ import annotations

import asyncio
import time

import httpx2
import pytest
from starlette.testclient import TestClient

from app.services.directory import DETAIL_CALLS
from tests.support.apps import MakeClient, sandbox_app
from tests.support.asgi import started
from tests.support.simulators import Simulators

GET_ONE = "GET /api/clients/{id}"


def test_an_unknown_id_against_a_fresh_list_asks_finsync_nothing(
    client: TestClient, simulators: Simulators
) -> None:
    for _ in range(20):
        assert client.get("/counterparties/finsync:999").status_code == 404
    assert simulators.finsync_calls(GET_ONE) == 0
    assert simulators.finsync_calls() == 1  # the list, once


def stale_list(make_client: MakeClient) -> TestClient:
    client = make_client(finsync_ttl_seconds=0.05)
    client.get("/counterparties?source=finsync")
    return client


def test_against_a_stale_list_a_miss_is_asked_once_and_remembered(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = stale_list(make_client)
    for _ in range(3):
        time.sleep(0.06)  # past the TTL again: the list served is stale each time
        response = client.get("/counterparties/finsync:999")
        assert response.status_code == 404
    assert simulators.finsync_calls(GET_ONE) == 1


@pytest.mark.anyio
async def test_concurrent_look_ups_share_calls_and_never_queue_past_their_bound(
    simulators: Simulators,
) -> None:
    # One caller sends every request at once: its own in-flight limit is not what is tested.
    app = sandbox_app(simulators, finsync_ttl_seconds=0.05, caller_max_in_flight=100)
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as http,
    ):
        await http.get("/counterparties?source=finsync")
        await asyncio.sleep(0.06)
        simulators.finsync_faults.delay_seconds = 0.2  # FinSync stalls
        ids = [990 + n for n in range(DETAIL_CALLS)]
        answers = await asyncio.gather(
            *(http.get(f"/counterparties/finsync:{i}") for i in ids for _ in range(5)),
            http.get("/counterparties/finsync:980"),  # one more distinct id: no slot left
        )
    statuses = [answer.status_code for answer in answers]
    assert statuses[:-1] == [404] * (5 * DETAIL_CALLS)
    assert statuses[-1] == 503
    assert answers[-1].json()["code"] == "upstream_error"
    # Five askers of each id shared one call; the one over the bound made none.
    assert simulators.finsync_calls(GET_ONE) == DETAIL_CALLS
