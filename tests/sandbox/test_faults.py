"""Switchable faults: every mode on both simulators, counting down, scoping, the control route."""

import json
import time
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette

from app.sandbox import ConnectionDroppedError, FaultMode, Faults, create_finsync_app
from tests.support.simulators import consent, faults_of

pytestmark = pytest.mark.anyio


# ---------------------------------------------------------------------------- the switch itself


def test_faults_default_to_none() -> None:
    assert Faults().pending() == "none"
    assert Faults().as_json() == {
        "mode": "none",
        "delay_seconds": 0.0,
        "remaining": None,
        "consents": [],
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "explode"},
        {"delay_seconds": -1.0},
        {"remaining": -1},
        {"consents": ["bt-main"]},
        {"timeout_seconds": -1.0},
    ],
)
def test_faults_reject_nonsense(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"must|unknown"):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_remaining_counts_down_then_reverts_to_none() -> None:
    faults = Faults(mode="error", remaining=2)

    seen = []
    for _ in range(3):
        seen.append(faults.pending())
        if seen[-1] != "none":
            faults.consume()

    assert seen == ["error", "error", "none"]
    assert (faults.mode, faults.remaining) == ("none", None)


def test_consents_narrow_only_finqware_requests() -> None:
    faults = Faults(mode="error", consents=frozenset({"ing-ops"}))

    assert faults.pending("ing-ops") == "error"
    assert faults.pending("bt-main") == "none"
    assert faults.pending("") == "none"  # a request naming no known consent
    assert faults.pending() == "error"  # FinSync: not narrowed


def test_app_uses_the_faults_object_it_is_given() -> None:
    faults = Faults(mode="html")

    assert create_finsync_app(faults).state.faults is faults


# ---------------------------------------------------------------------------- FinSync modes


@pytest.mark.parametrize(
    ("mode", "status", "body"),
    [
        ("error", 500, {"error": "Internal server error"}),
        ("rate_limited", 500, {"error": "Too many requests"}),
        ("unauthorized", 401, {"error": "Unauthorized"}),
    ],
)
async def test_finsync_json_faults(
    finsync_app: Starlette,
    finsync: httpx2.AsyncClient,
    mode: FaultMode,
    status: int,
    body: dict[str, str],
) -> None:
    faults_of(finsync_app).mode = mode

    response = await finsync.get("/api/clients/101")

    assert response.status_code == status
    assert response.json() == body


async def test_finsync_error_fault_creates_nothing(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="error", remaining=1))

    failed = await finsync.post("/api/clients", json={"name": "Nunca Creado"})
    listed = (await finsync.get("/api/clients")).json()

    assert failed.status_code == 500
    assert "Nunca Creado" not in {c["name"] for c in listed}


@pytest.mark.parametrize("route", ["finsync", "finqware"])
async def test_html_fault_is_a_proxy_502_page(
    finsync_app: Starlette,
    finqware_app: Starlette,
    finsync: httpx2.AsyncClient,
    finqware: httpx2.AsyncClient,
    route: str,
) -> None:
    faults_of(finsync_app).mode = faults_of(finqware_app).mode = "html"

    if route == "finsync":
        response = await finsync.get("/api/clients")
    else:
        response = await finqware.post("/balances/get", json=consent("bt-main"))

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text


async def test_finsync_truncated_fault_cuts_the_json(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    whole = await finsync.get("/api/clients", params={"page": 1})
    faults_of(finsync_app).mode = "truncated"
    cut = await finsync.get("/api/clients", params={"page": 1})

    assert cut.status_code == 200
    assert cut.headers["content-type"] == "application/json"
    assert 0 < len(cut.content) < len(whole.content)
    assert whole.content.startswith(cut.content)
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)


async def test_drop_after_create_stores_the_client_then_drops(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="drop_after_create", remaining=1))

    with pytest.raises(httpx2.TransportError) as dropped:
        await finsync.post("/api/clients", json={"name": "Resultado Incierto"})
    listed = (await finsync.get("/api/clients")).json()

    assert isinstance(dropped.value, ConnectionDroppedError)
    assert [c["name"] for c in listed].count("Resultado Incierto") == 1
    assert faults_of(finsync_app).mode == "none"


async def test_drop_after_create_spares_reads_and_rejected_creates(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="drop_after_create", remaining=1))

    read = await finsync.get("/api/clients/101")
    rejected = await finsync.post("/api/clients", json={"name": ""})

    assert read.status_code == 200
    assert rejected.status_code == 400
    assert (faults_of(finsync_app).mode, faults_of(finsync_app).remaining) == (
        "drop_after_create",
        1,
    )


async def test_finsync_ignores_consent_scoping(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="error", consents=frozenset({"ing-ops"})))

    assert (await finsync.get("/api/clients")).status_code == 500


# ---------------------------------------------------------------------------- moving pages


async def _page(finsync: httpx2.AsyncClient, page: int, size: int = 10) -> dict[str, Any]:
    response = await finsync.get("/api/clients", params={"page": page, "pageSize": size})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _ids(body: dict[str, Any]) -> list[int]:
    return [client["id"] for client in body["data"]]


async def test_delete_after_page_deletes_page_1s_first_client_and_shifts_the_rest(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    before = [_ids(await _page(finsync, number)) for number in (1, 2)]
    faults_of(finsync_app).replace(Faults(mode="delete_after_page", remaining=1))

    first = await _page(finsync, 1)
    second = await _page(finsync, 2)

    assert _ids(first) == before[0]  # served as it stood, then the delete
    assert second["pagination"]["total"] == first["pagination"]["total"] - 1
    # The old page 2's first client moved onto page 1: a reader of page 2 never sees it.
    assert _ids(second) == [*before[1][1:], second["data"][-1]["id"]]
    assert before[1][0] not in _ids(second)
    assert (await finsync.get(f"/api/clients/{before[0][0]}")).status_code == 404
    assert faults_of(finsync_app).mode == "none"


async def test_create_at_front_lists_a_new_client_first(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="create_at_front", remaining=1))

    first = await _page(finsync, 1)
    again = await _page(finsync, 1)

    assert again["pagination"]["total"] == first["pagination"]["total"] + 1
    assert _ids(again)[1:] == _ids(first)[:-1]
    created = again["data"][0]
    assert created["type"] == 1
    assert created["accounts"] == []
    assert created["id"] > max(_ids(first))  # a new id, yet listed first
    assert faults_of(finsync_app).mode == "none"


async def test_grow_pages_adds_a_page_right_after_page_1(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="grow_pages", remaining=1))

    first = await _page(finsync, 1)
    second = await _page(finsync, 2)

    assert second["pagination"]["totalPages"] == first["pagination"]["totalPages"] + 1
    assert second["pagination"]["total"] == first["pagination"]["total"] + 10
    assert faults_of(finsync_app).mode == "none"


async def test_ignore_page_answers_page_1_whatever_is_asked(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    first = await _page(finsync, 1)
    faults_of(finsync_app).replace(Faults(mode="ignore_page", remaining=2))

    ignored = [await _page(finsync, number) for number in (1, 2, 3)]
    honoured = await _page(finsync, 2)

    # Page 1 asked is not an ignored page: only pages 2 and 3 count.
    assert [_ids(body) for body in ignored] == [_ids(first)] * 3
    assert [body["pagination"]["page"] for body in ignored] == [1, 1, 1]
    assert honoured["pagination"]["page"] == 2
    assert _ids(honoured) != _ids(first)
    assert faults_of(finsync_app).mode == "none"


@pytest.mark.parametrize("mode", ["delete_after_page", "create_at_front", "grow_pages"])
async def test_moving_pages_happen_on_every_read_until_switched_off(
    finsync_app: Starlette, finsync: httpx2.AsyncClient, mode: FaultMode
) -> None:
    faults_of(finsync_app).mode = mode

    totals = [(await _page(finsync, 1))["pagination"]["total"] for _ in range(3)]

    assert len(set(totals)) == 3  # the list moved after each page 1
    assert faults_of(finsync_app).mode == mode


@pytest.mark.parametrize("mode", ["delete_after_page", "create_at_front", "grow_pages"])
async def test_moving_pages_spare_unpaged_reads_and_single_clients(
    finsync_app: Starlette, finsync: httpx2.AsyncClient, mode: FaultMode
) -> None:
    faults_of(finsync_app).replace(Faults(mode=mode, remaining=1))

    whole = (await finsync.get("/api/clients")).json()
    single = await finsync.get("/api/clients/101")
    again = (await finsync.get("/api/clients")).json()

    assert single.status_code == 200
    assert whole == again
    assert (faults_of(finsync_app).mode, faults_of(finsync_app).remaining) == (mode, 1)


@pytest.mark.parametrize(
    "mode", ["delete_after_page", "create_at_front", "grow_pages", "ignore_page"]
)
async def test_finqware_has_no_paged_list_to_move(
    finqware_app: Starlette, finqware: httpx2.AsyncClient, mode: FaultMode
) -> None:
    faults_of(finqware_app).replace(Faults(mode=mode, remaining=1))

    response = await finqware.post("/balances/get", json=consent("bt-main"))

    assert response.status_code == 200
    assert faults_of(finqware_app).remaining == 1


async def test_the_control_route_switches_moving_pages(finsync_app: Starlette) -> None:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finsync_app), base_url="http://sandbox"
    ) as client:
        switched = await client.put(
            "/_sandbox/faults", json={"mode": "delete_after_page", "remaining": 1}
        )

    assert switched.status_code == 200
    assert switched.json()["mode"] == "delete_after_page"
    assert (faults_of(finsync_app).mode, faults_of(finsync_app).remaining) == (
        "delete_after_page",
        1,
    )


# ---------------------------------------------------------------------------- Finqware modes


@pytest.mark.parametrize(
    ("mode", "status", "type_", "code"),
    [
        ("error", 500, "api_error", "internal_server_error"),
        ("rate_limited", 400, "external_api_error", "external_api_too_many_requests"),
        ("unauthorized", 401, "unauthorized", "invalid_access_token"),
    ],
)
async def test_finqware_error_object_faults(
    finqware_app: Starlette,
    finqware: httpx2.AsyncClient,
    mode: FaultMode,
    status: int,
    type_: str,
    code: str,
) -> None:
    faults_of(finqware_app).mode = mode

    response = await finqware.post("/accounts/get", json=consent("bt-main"))

    assert response.status_code == status
    body = response.json()
    assert (body["http"], body["type"], body["code"]) == (status, type_, code)


async def test_finqware_truncated_fault_cuts_the_json(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    faults_of(finqware_app).mode = "truncated"

    cut = await finqware.post("/balances/get", json=consent("ing-ops"))

    assert cut.status_code == 200
    assert cut.content.startswith(b'[{"account_id":')
    with pytest.raises(json.JSONDecodeError):
        json.loads(cut.content)


async def test_finqware_has_no_create_to_drop(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    faults_of(finqware_app).replace(Faults(mode="drop_after_create", remaining=1))

    response = await finqware.post("/balances/get", json=consent("bt-main"))

    assert response.status_code == 200
    assert faults_of(finqware_app).remaining == 1


async def test_consent_scoped_fault_hits_only_those_consents(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    faults_of(finqware_app).replace(
        Faults(mode="error", remaining=2, consents=frozenset({"ing-ops"}))
    )

    statuses = [
        (await finqware.post("/balances/get", json=consent(key))).status_code
        for key in ("bt-main", "ing-ops", "bt-main", "ing-ops", "ing-ops")
    ]
    unknown = await finqware.post("/balances/get", json={})

    assert statuses == [200, 500, 200, 500, 200]
    assert unknown.status_code == 400


# ---------------------------------------------------------------------------- counting down


async def test_remaining_faults_then_recovers_over_http(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).replace(Faults(mode="error", remaining=2))

    statuses = [(await finsync.get("/api/clients")).status_code for _ in range(3)]

    assert statuses == [500, 500, 200]
    assert finsync_app.state.calls["GET /api/clients"] == 3


# ---------------------------------------------------------------------------- latency


async def test_delay_is_added_to_every_request(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    faults_of(finqware_app).delay_seconds = 0.1

    started = time.perf_counter()
    response = await finqware.post("/balances/get", json=consent("bt-main"))

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.1


def test_delay_is_scoped_to_consents_like_the_fault() -> None:
    faults = Faults(delay_seconds=2.0, consents=frozenset({"ing-ops"}))

    assert faults.delay_for("ing-ops") == 2.0
    assert faults.delay_for("bt-main") == 0.0
    assert faults.delay_for("") == 0.0  # a request naming no known consent
    assert faults.delay_for(None) == 2.0  # FinSync: consents do not narrow it
    assert Faults(delay_seconds=2.0).delay_for("bt-main") == 2.0


async def test_a_scoped_delay_holds_that_consents_requests(
    finqware_app: Starlette, finqware: httpx2.AsyncClient
) -> None:
    faults_of(finqware_app).replace(Faults(delay_seconds=0.2, consents=frozenset({"ing-ops"})))

    started = time.perf_counter()
    response = await finqware.post("/balances/get", json=consent("ing-ops"))

    assert response.status_code == 200
    assert time.perf_counter() - started >= 0.2


async def test_timeout_fault_holds_the_request(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    faults_of(finsync_app).mode = "timeout"

    with anyio.move_on_after(0.2) as scope:
        await finsync.get("/api/clients")

    assert scope.cancelled_caught
    assert faults_of(finsync_app).mode == "timeout"


async def test_timeout_fault_answers_normally_once_the_longer_wait_ends(
    finsync_app: Starlette, finsync: httpx2.AsyncClient
) -> None:
    # Held 0.2 s and delayed 0.3 s: the longer wait applies (0.3 s), not the shorter (0.2 s).
    # Only a lower bound is asserted: how much longer a loaded machine takes proves nothing.
    faults_of(finsync_app).replace(
        Faults(mode="timeout", delay_seconds=0.3, remaining=1, timeout_seconds=0.2)
    )
    started = time.perf_counter()
    response = await finsync.get("/api/clients/101")
    waited = time.perf_counter() - started
    assert response.status_code == 200
    assert waited >= 0.3
    assert faults_of(finsync_app).mode == "none"


# ---------------------------------------------------------------------------- control route


@pytest.mark.parametrize("simulator", ["finsync", "finqware"])
async def test_control_route_reads_and_switches_faults(
    finsync_app: Starlette, finqware_app: Starlette, simulator: str
) -> None:
    app = finsync_app if simulator == "finsync" else finqware_app
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sandbox"
    ) as client:
        initial = await client.get("/_sandbox/faults")
        switched = await client.put(
            "/_sandbox/faults",
            json={"mode": "error", "delay_seconds": 0, "remaining": 3, "consents": ["ing-ops"]},
        )
        # The control route itself is never faulted.
        read_back = await client.get("/_sandbox/faults")
        cleared = await client.put("/_sandbox/faults", json={})

    assert initial.json()["mode"] == "none"
    expected = {"mode": "error", "delay_seconds": 0.0, "remaining": 3, "consents": ["ing-ops"]}
    assert switched.json() == read_back.json() == expected
    assert cleared.json() == Faults().as_json()
    assert faults_of(app).mode == "none"
    assert sum(app.state.calls.values()) == 0


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"[]",
        b'{"mode": "explode"}',
        b'{"mode": "error", "extra": 1}',
        b'{"delay_seconds": "1"}',
        b'{"delay_seconds": true}',
        b'{"delay_seconds": -1}',
        b'{"remaining": 1.5}',
        b'{"remaining": -2}',
        b'{"consents": "bt-main"}',
    ],
)
async def test_control_route_rejects_bad_bodies(finsync_app: Starlette, content: bytes) -> None:
    faults_of(finsync_app).mode = "html"
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=finsync_app), base_url="http://sandbox"
    ) as client:
        response = await client.put("/_sandbox/faults", content=content)

    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert faults_of(finsync_app).mode == "html"
