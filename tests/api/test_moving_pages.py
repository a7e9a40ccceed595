"""FinSync's list moving while tesoro reads it, seen over the API: a move once is read again
and the figures are right; a move on every read is never `complete: true` with wrong
figures, but the last consistent data `stale` with `inconsistent_read`, or the connection
`unavailable` with it.

The FinSync simulator holds 300 internal ARS clients (three pages of 100): client 1 holds
1.00, client 101 (the first of page 2) 1,000,000.00, 248 others 1.00 and the rest 0.00.
Deleting client 1 right after page 1 is served shifts client 101 onto page 1, which a single
read has already passed: it would answer a net of 249.00 instead of 1,000,248.00.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.sandbox import create_finqware_app, create_finsync_app
from app.sandbox.data import FINSYNC_COMPANY_ID, FinsyncAccount, FinsyncClient
from app.sandbox.faults import FaultMode, Faults
from app.sandbox.finsync import FinsyncStore
from tests.support.answers import ok_json
from tests.support.apps import opened_clients, sandbox_app
from tests.support.simulators import Simulators

STAMP = "2026-11-20T18:00:00.000Z"
CLIENTS = 300
RICH = 101  # the first client of page 2
NET_ALL = Decimal("1000249.00")  # every client
NET_AFTER_DELETE = Decimal("1000248.00")  # client 1 deleted
NET_OF_ONE_MOVED_READ = Decimal("249.00")  # client 1 kept, client 101 lost


def _balance(client_id: int) -> str:
    if client_id == RICH:
        return "1000000.00"
    return "1.00" if client_id <= 250 else "0.00"


def _client(client_id: int) -> FinsyncClient:
    return FinsyncClient(
        id=client_id,
        name=f"Caja {client_id:03d}",
        description=None,
        company_id=FINSYNC_COMPANY_ID,
        type=0,
        created_at=STAMP,
        updated_at=STAMP,
        company_client_id=client_id,
        accounts=(
            FinsyncAccount(
                id=10_000 + client_id,
                name="ARS",
                currency_name="ARS",
                balance=_balance(client_id),
                created_at=STAMP,
                updated_at=STAMP,
            ),
        ),
    )


@pytest.fixture
def simulators() -> Simulators:
    store = FinsyncStore([_client(i) for i in range(1, CLIENTS + 1)])
    return Simulators(finsync=create_finsync_app(store=store), finqware=create_finqware_app())


@pytest.fixture
def client(simulators: Simulators) -> Iterator[TestClient]:
    # Every forced refresh really asks FinSync: no refresh floor, no back-off after a failure.
    with opened_clients() as open_client:
        yield open_client(
            sandbox_app(simulators, min_refresh_interval_seconds=0, failure_backoff_seconds=0)
        )


def move(simulators: Simulators, mode: FaultMode, remaining: int | None) -> None:
    simulators.finsync_faults.replace(Faults(mode=mode, remaining=remaining))


def finsync_positions(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.get("/positions", params={"source": "finsync"}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def net_ars(body: dict[str, Any]) -> Decimal:
    [ars] = [total for total in body["totals"] if total["currency"] == "ARS"]
    return Decimal(ars["net"])


def finsync_source(body: dict[str, Any]) -> dict[str, Any]:
    found: list[dict[str, Any]] = [s for s in body["sources"] if s["source"] == "finsync"]
    [source] = found
    return source


def finsync_ids(client: TestClient) -> list[str]:
    ids: list[str] = []
    page = 1
    while True:
        body = ok_json(client, "/counterparties", source="finsync", page_size=200, page=page)
        ids.extend(item["id"] for item in body["items"])
        if len(ids) >= body["total"]:
            assert len(ids) == body["total"]
            return ids
        page += 1


# ------------------------------------------------------------------ still: one read, agreed


def test_a_list_that_stands_still_is_read_once_with_page_1_confirmed(
    client: TestClient, simulators: Simulators
) -> None:
    body = finsync_positions(client)

    assert net_ars(body) == NET_ALL
    assert body["complete"] is True
    assert finsync_source(body)["status"] == "ok"
    assert simulators.finsync_calls() == 4  # pages 1, 2, 3, and page 1 again to confirm


# --------------------------------------------------------------- a move once: read again


def test_a_delete_on_page_1_during_the_read_is_read_again_to_the_right_net(
    client: TestClient, simulators: Simulators
) -> None:
    move(simulators, "delete_after_page", 1)

    body = finsync_positions(client)

    assert net_ars(body) == NET_AFTER_DELETE
    assert net_ars(body) != NET_OF_ONE_MOVED_READ
    assert body["complete"] is True
    assert finsync_source(body)["status"] == "ok"
    assert finsync_source(body)["error"] is None
    ids = finsync_ids(client)
    assert "finsync:1" not in ids  # deleted
    assert f"finsync:{RICH}" in ids  # shifted onto page 1 by the delete
    assert len(ids) == CLIENTS - 1
    assert simulators.finsync_faults.mode == "none"


def test_a_client_created_at_the_front_does_not_push_the_last_one_off(
    client: TestClient, simulators: Simulators
) -> None:
    move(simulators, "create_at_front", 1)

    body = finsync_positions(client)
    ids = finsync_ids(client)

    assert net_ars(body) == NET_ALL
    assert body["complete"] is True
    assert finsync_source(body)["status"] == "ok"
    assert f"finsync:{CLIENTS}" in ids  # the last client, not fallen off the end
    assert len(ids) == CLIENTS + 1


def test_pages_that_grow_during_the_read_are_read_to_the_new_last_page(
    client: TestClient, simulators: Simulators
) -> None:
    move(simulators, "grow_pages", 1)

    body = finsync_positions(client)
    ids = finsync_ids(client)

    assert net_ars(body) == NET_ALL
    assert body["complete"] is True
    assert len(ids) == CLIENTS + 100
    assert f"finsync:{CLIENTS + 100}" in ids  # on page 4, which did not exist at first


def test_a_server_that_ignores_the_page_once_is_read_again_in_full(
    client: TestClient, simulators: Simulators
) -> None:
    move(simulators, "ignore_page", 1)

    body = finsync_positions(client)

    assert net_ars(body) == NET_ALL
    assert body["complete"] is True
    assert len(finsync_ids(client)) == CLIENTS


# ------------------------------------------- a move on every read: said, never silently wrong


@pytest.mark.parametrize("mode", ["delete_after_page", "create_at_front", "grow_pages"])
def test_a_list_that_moves_on_every_read_serves_the_last_consistent_data_stale(
    client: TestClient, simulators: Simulators, mode: FaultMode
) -> None:
    before = finsync_positions(client)
    move(simulators, mode, None)

    body = finsync_positions(client, **{"Cache-Control": "no-cache"})

    source = finsync_source(body)
    assert source["status"] == "stale"
    assert source["error"]["code"] == "inconsistent_read"
    assert "read 3 times" in source["error"]["message"]
    assert source["fetched_at"] == finsync_source(before)["fetched_at"]
    # The figures of the last read whose pages agreed, not of a read that moved.
    assert net_ars(body) == NET_ALL
    assert body["positions"] == before["positions"]
    assert body["complete"] is True  # stale is not unavailable; the source says why


@pytest.mark.parametrize("mode", ["delete_after_page", "ignore_page"])
def test_a_list_that_never_agrees_with_nothing_kept_is_unavailable_never_partial(
    client: TestClient, simulators: Simulators, mode: FaultMode
) -> None:
    move(simulators, mode, None)

    alone = client.get("/positions", params={"source": "finsync"})
    everything = client.get("/counterparties", params={"page_size": 200})

    # FinSync alone: no answer at all rather than 100 of 300 clients.
    assert alone.status_code == 503
    assert alone.headers["content-type"] == "application/problem+json"
    assert alone.headers["retry-after"] == "30"  # transient: a later read may agree
    [source] = alone.json()["sources"]
    assert (source["source"], source["status"]) == ("finsync", "unavailable")
    assert source["error"]["code"] == "inconsistent_read"
    # With the banks: a 200 that says it is not complete, and lists no FinSync client.
    assert everything.status_code == 200
    listed = everything.json()
    assert listed["complete"] is False
    assert finsync_source(listed)["status"] == "unavailable"
    assert finsync_source(listed)["error"]["code"] == "inconsistent_read"
    assert not [item for item in listed["items"] if item["source"] == "finsync"]


def test_a_server_that_ignores_the_page_never_answers_100_of_300_as_complete(
    client: TestClient, simulators: Simulators
) -> None:
    move(simulators, "ignore_page", None)

    for _ in range(3):
        response = client.get(
            "/counterparties",
            params={"source": "finsync", "page_size": 200},
            headers={"Cache-Control": "no-cache"},
        )
        assert response.status_code == 503
        assert response.json()["sources"][0]["error"]["code"] == "inconsistent_read"


def test_a_create_is_not_made_on_a_list_that_never_agrees(
    client: TestClient, simulators: Simulators
) -> None:
    # The duplicate check reads FinSync's list: one that moves under it cannot say "absent".
    move(simulators, "delete_after_page", None)

    response = client.post("/counterparties", json={"name": "Proveedor Nuevo"})

    assert response.status_code == 503
    problem = response.json()
    assert problem["code"] == "inconsistent_read"
    assert problem["type"] == "/problems/upstream-unavailable"
    assert simulators.finsync_calls("POST /api/clients") == 0


def test_the_connection_recovers_once_the_list_stands_still(
    client: TestClient, simulators: Simulators
) -> None:
    move(simulators, "delete_after_page", None)
    assert client.get("/positions", params={"source": "finsync"}).status_code == 503
    simulators.finsync_faults.reset()

    body = finsync_positions(client, **{"Cache-Control": "no-cache"})

    assert finsync_source(body)["status"] == "ok"
    assert finsync_source(body)["error"] is None
    # Three reads each deleted one client (1, 2, 3) before the list stood still.
    assert net_ars(body) == NET_ALL - 3
