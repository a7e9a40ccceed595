"""End to end over real sockets: simulators and tesoro each on their own loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx2
import pytest

from app.main import create_app
from app.sandbox import FINSYNC_API_KEY, create_finqware_app, create_finsync_app
from app.settings import Settings
from tests.support.apps import upstream_settings
from tests.support.keys import bearer, sha256
from tests.support.servers import serve

pytestmark = pytest.mark.e2e

KEY = "e2e-caller-key"


@dataclass
class Stack:
    tesoro: httpx2.Client
    finsync_url: str
    finqware_url: str


@pytest.fixture
def stack() -> Iterator[Stack]:
    with serve(create_finsync_app()) as finsync_url, serve(create_finqware_app()) as finqware_url:
        settings = upstream_settings(
            finsync_url,
            finqware_url + "/v1",
            api_keys={"e2e": {"sha256": sha256(KEY), "scopes": ["read", "write"]}},
            upstream_timeout_seconds=0.5,
            min_refresh_interval_seconds=0,
            failure_backoff_seconds=0,
        )
        with (
            serve(create_app(settings)) as tesoro_url,
            httpx2.Client(base_url=tesoro_url, headers=bearer(KEY), timeout=10) as client,
        ):
            yield Stack(client, finsync_url, finqware_url)


def set_fault(base_url: str, **fault: object) -> None:
    response = httpx2.put(f"{base_url}/_sandbox/faults", content=json.dumps(fault), timeout=5)
    response.raise_for_status()


def test_positions_over_the_network_match_the_interpretation(stack: Stack) -> None:
    response = stack.tesoro.get("/positions", params={"include_zero": "true"})
    assert response.status_code == 200
    body = response.json()
    found = {p["account_id"]: p for p in body["positions"]}
    assert found["finsync:906"]["amount"] == "-8300.75"
    assert found["finsync:931"]["meaning"] == "payable"
    sources = {s["source"]: s["status"] for s in body["sources"]}
    assert sources["finsync"] == "ok"
    assert sources["finqware:bt-main"] == "ok"
    assert sources["finqware:brd-legacy"] == "unavailable"
    net = sum((Decimal(t["net"]) for t in body["totals"] if t["currency"] == "ARS"), Decimal(0))
    assert net == sum(
        (Decimal(p["amount"]) for p in body["positions"] if p["currency"] == "ARS"), Decimal(0)
    )


def test_a_slow_upstream_times_out_and_the_rest_still_answers(stack: Stack) -> None:
    stack.tesoro.get("/positions")
    set_fault(stack.finsync_url, mode="timeout", delay_seconds=3)
    body = stack.tesoro.get("/positions", headers={"Cache-Control": "no-cache"}).json()
    sources = {s["source"]: s for s in body["sources"]}
    assert sources["finsync"]["status"] == "stale"
    assert sources["finsync"]["error"]["code"] == "timeout"
    assert any(p["source"] == "finsync" for p in body["positions"])


def test_a_create_whose_connection_drops_is_found_not_resent(stack: Stack) -> None:
    set_fault(stack.finsync_url, mode="drop_after_create")
    response = stack.tesoro.post("/counterparties", json={"name": "Dropped Line SA"})
    assert response.status_code == 201, response.text
    created = response.json()
    set_fault(stack.finsync_url, mode="none")
    listed = stack.tesoro.get("/counterparties", params={"q": "dropped line"}).json()
    assert [i["id"] for i in listed["items"]] == [created["id"]]


def test_unauthenticated_calls_are_refused_over_the_network(stack: Stack) -> None:
    response = httpx2.get(str(stack.tesoro.base_url) + "/positions", timeout=5)
    assert response.status_code == 401


def test_upstream_calls_go_through_the_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # The FinSync simulator stands in for a forward proxy: it answers the absolute-form
    # request for a host that does not resolve, so only a proxied call can succeed.
    with serve(create_finsync_app()) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        settings = Settings(
            _env_file=None,
            finsync_base_url="http://finsync.invalid",
            finsync_api_key=FINSYNC_API_KEY,
            auth_disabled=True,
        )
        with serve(create_app(settings)) as tesoro_url:
            response = httpx2.get(f"{tesoro_url}/positions", timeout=10, trust_env=False)
    assert response.status_code == 200, response.text
    assert response.json()["sources"][0]["status"] == "ok"
