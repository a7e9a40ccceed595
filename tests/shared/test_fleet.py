"""Two replicas (two apps) on one set of simulators and one real Redis: what the fleet asks the
upstreams, creates and idempotent retries across replicas, and Redis failing under them."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx2
import pytest

from app.sandbox import SANDBOX_CONSENTS
from app.services.shared import PREFIX
from tests.support.redis import RedisServer, replicas
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

CONSENT_KEYS = [consent.key for consent in SANDBOX_CONSENTS]


def _calls(simulators: Simulators) -> dict[str, int]:
    return {
        "finsync pages": simulators.finsync_calls(),
        **{key: simulators.consent_calls(key) for key in CONSENT_KEYS},
    }


async def _one_cold_request_calls() -> dict[str, int]:
    """What one request to one replica asks the upstreams: the least a fleet can ask."""
    alone = Simulators.fresh()
    async with replicas(alone, count=1) as [http]:
        assert (await http.get("/positions")).status_code == 200
    return _calls(alone)


async def _cold_burst(clients: list[httpx2.AsyncClient], each: int) -> list[httpx2.Response]:
    return await asyncio.gather(*(http.get("/positions") for http in clients for _ in range(each)))


async def test_two_replicas_x_100_cold_requests_ask_each_page_and_consent_once(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    least = await _one_cold_request_calls()
    async with replicas(simulators, redis_url=redis_server.url) as clients:
        answers = await _cold_burst(clients, 100)
    assert {answer.status_code for answer in answers} == {200}
    assert _calls(simulators) == least
    assert all(count == 1 for key, count in least.items() if key in CONSENT_KEYS)
    # Both replicas serve the same data version: one ETag for the fleet.
    assert len({answer.headers["etag"] for answer in answers}) == 1


async def test_without_redis_each_replica_asks_for_itself(simulators: Simulators) -> None:
    least = await _one_cold_request_calls()
    async with replicas(simulators) as clients:
        await _cold_burst(clients, 20)
    assert _calls(simulators) == {key: 2 * count for key, count in least.items()}


async def test_the_refresh_floor_holds_for_the_fleet(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    async with replicas(simulators, redis_url=redis_server.url) as [first, second]:
        assert (await first.get("/positions")).status_code == 200
        before = _calls(simulators)
        # A forced refresh right after another replica's load is inside the minimum interval.
        refreshed = await second.get("/positions", headers={"Cache-Control": "no-cache"})
        assert refreshed.status_code == 200
        assert _calls(simulators) == before


async def test_a_failure_backs_off_for_the_fleet(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    simulators.finsync_faults.mode = "error"
    async with replicas(simulators, redis_url=redis_server.url) as [first, second]:
        await first.get("/counterparties")
        failed = simulators.finsync_calls()
        assert failed >= 1
        answer = await second.get("/counterparties")
        assert answer.status_code == 200  # partial: the banks still answer
        finsync = next(s for s in answer.json()["sources"] if s["source"] == "finsync")
        assert finsync["status"] == "unavailable"
        assert simulators.finsync_calls() == failed  # the second replica did not ask again


async def test_a_replica_serves_another_ones_snapshot_stale_when_its_upstream_fails(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    async with replicas(
        simulators,
        redis_url=redis_server.url,
        finsync_ttl_seconds=0.2,
        min_refresh_interval_seconds=0,
    ) as [
        first,
        second,
    ]:
        assert (await first.get("/counterparties")).status_code == 200
        await asyncio.sleep(0.3)
        simulators.finsync_faults.mode = "error"
        answer = await second.get("/counterparties", headers={"Cache-Control": "no-cache"})
    finsync = next(s for s in answer.json()["sources"] if s["source"] == "finsync")
    assert finsync["status"] == "stale"
    assert finsync["error"] is not None  # its own load failed: the snapshot from Redis served
    assert any(item["id"].startswith("finsync:") for item in answer.json()["items"])


async def test_a_cold_replica_answers_stale_from_redis_at_once_and_refreshes_behind(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    async with replicas(simulators, redis_url=redis_server.url, finsync_ttl_seconds=0.2) as [
        first,
        second,
    ]:
        assert (await first.get("/counterparties")).status_code == 200
        loaded = simulators.finsync_calls()
        await asyncio.sleep(0.3)
        simulators.finsync_faults.delay_seconds = 0.5
        answer = await second.get("/counterparties")
        finsync = next(s for s in answer.json()["sources"] if s["source"] == "finsync")
        assert finsync["status"] == "stale"  # not kept waiting for FinSync's 0.5 s
        for _ in range(100):  # the refresh behind it reaches FinSync and lands
            again = await second.get("/counterparties")
            finsync = next(s for s in again.json()["sources"] if s["source"] == "finsync")
            if finsync["status"] == "ok":
                break
            await asyncio.sleep(0.05)
        assert finsync["status"] == "ok"
        assert simulators.finsync_calls() > loaded


async def test_concurrent_creates_of_one_name_on_two_replicas_create_it_once(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    async with replicas(simulators, redis_url=redis_server.url) as clients:
        answers = await asyncio.gather(
            *(
                http.post("/counterparties", json={"name": name})
                for http in clients
                for name in ("Gemelos SA", "GEMELOS  SA", "Gémelos SA")
            )
        )
    assert sorted(answer.status_code for answer in answers) == [201, 409, 409, 409, 409, 409]
    created = next(answer.json() for answer in answers if answer.status_code == 201)
    assert {a.json()["existing_id"] for a in answers if a.status_code == 409} == {created["id"]}
    assert simulators.finsync_calls("POST /api/clients") == 1


async def test_creates_of_different_names_share_one_fresh_read_of_the_list(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    async with replicas(simulators, count=1, redis_url=redis_server.url) as [http]:
        simulators.finsync_faults.delay_seconds = 0.3
        answers = await asyncio.gather(
            *(http.post("/counterparties", json={"name": f"Proveedor {n}"}) for n in range(6))
        )
    assert [answer.status_code for answer in answers] == [201] * 6
    assert simulators.finsync_calls("POST /api/clients") == 6
    # The six creates share reads of FinSync's list (creates whose locks were taken within
    # a moment of each other share one; on a busy machine they may need two or three).
    assert simulators.finsync_calls() < 6 * await _pages_of_one_read()


async def _pages_of_one_read() -> int:
    return (await _one_cold_request_calls())["finsync pages"]


async def test_an_idempotent_retry_on_another_replica_replays(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    key = {"Idempotency-Key": "retry-7f3a"}
    async with replicas(simulators, redis_url=redis_server.url) as [first, second]:
        created = await first.post("/counterparties", json={"name": "Reintento SA"}, headers=key)
        retried = await second.post("/counterparties", json={"name": "Reintento SA"}, headers=key)
        other_body = await second.post("/counterparties", json={"name": "Otro SA"}, headers=key)
    assert created.status_code == retried.status_code == 201
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == created.json()
    assert other_body.status_code == 422
    assert simulators.finsync_calls("POST /api/clients") == 1
    # The caller's key is not in Redis's key names, only its digest.
    assert b"retry-7f3a" not in redis_server.command("KEYS", "*")


async def test_concurrent_requests_with_one_key_on_two_replicas_create_once(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    key = {"Idempotency-Key": "together-1"}
    simulators.finsync_faults.delay_seconds = 0.2
    async with replicas(simulators, redis_url=redis_server.url) as clients:
        answers = await asyncio.gather(
            *(
                http.post("/counterparties", json={"name": "Juntos SA"}, headers=key)
                for http in clients
                for _ in range(2)
            )
        )
    assert [answer.status_code for answer in answers] == [201] * 4
    assert sum(answer.headers.get("idempotent-replayed") == "true" for answer in answers) == 3
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert simulators.finsync_calls("POST /api/clients") == 1


async def _readiness(http: httpx2.AsyncClient) -> str:
    answer = await http.get("/readyz")
    assert answer.status_code == 200  # Redis never makes the service unready
    redis: str = answer.json()["redis"]
    return redis


async def _redis_up_metric(http: httpx2.AsyncClient) -> str:
    lines = (await http.get("/metrics")).text.splitlines()
    return next(line for line in lines if line.startswith("tesoro_redis_up "))


async def test_redis_dying_and_coming_back_is_never_an_outage(
    simulators: Simulators, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with replicas(simulators, redis_url=redis_server.url) as [first, second]:
        assert await _readiness(first) == "ok"
        assert await _redis_up_metric(first) == "tesoro_redis_up 1.0"
        assert (await first.get("/positions")).status_code == 200

        redis_server.stop()
        with caplog.at_level(logging.INFO):
            for http in (first, second):
                answer = await http.get("/positions", headers={"Cache-Control": "no-cache"})
                assert answer.status_code == 200
            assert await _readiness(first) == "unavailable"
            assert await _redis_up_metric(first) == "tesoro_redis_up 0.0"
            # Creates go on under each process's own guard, and say so.
            created = await second.post("/counterparties", json={"name": "Sin Redis SA"})
            assert created.status_code == 201
            assert "guarded by this process" in caplog.text
            assert "unavailable" in caplog.text

        redis_server.start()  # same port: a restart, as the replicas see it
        states = ["unavailable"]
        for _ in range(100):  # it is tried again a couple of seconds after the failure
            states = [await _readiness(http) for http in (first, second)]
            if states == ["ok", "ok"]:
                break
            await asyncio.sleep(0.1)
        assert states == ["ok", "ok"]
        assert await _redis_up_metric(first) == "tesoro_redis_up 1.0"
        before = simulators.finsync_calls("POST /api/clients")
        again = await asyncio.gather(
            *(
                http.post("/counterparties", json={"name": "Con Redis SA"})
                for http in (first, second)
            )
        )
        assert sorted(answer.status_code for answer in again) == [201, 409]
        assert simulators.finsync_calls("POST /api/clients") == before + 1


async def test_readiness_says_off_without_redis(simulators: Simulators) -> None:
    async with replicas(simulators, count=1) as [http]:
        assert await _readiness(http) == "off"
        lines = (await http.get("/metrics")).text
    assert "tesoro_redis_up" not in lines


async def test_a_redis_password_is_never_shown(
    simulators: Simulators, caplog: pytest.LogCaptureFixture
) -> None:
    closed = RedisServer()  # never started: nothing listens on its port
    url = f"redis://tesoro:s3cr3t-pw@127.0.0.1:{closed.port}/0"
    with caplog.at_level(logging.DEBUG):
        async with replicas(simulators, count=1, redis_url=url) as [http]:
            assert (await http.get("/positions")).status_code == 200
            assert await _readiness(http) == "unavailable"
    assert "unavailable" in caplog.text
    assert "s3cr3t-pw" not in caplog.text


async def test_a_redis_that_never_answers_costs_its_time_out_then_is_skipped(
    simulators: Simulators,
) -> None:
    with socket.socket() as silent:  # accepts connections, never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        async with replicas(simulators, redis_url=url, redis_timeout_seconds=0.1) as [
            first,
            second,
        ]:
            answers = await _cold_burst([first, second], 5)
            assert {answer.status_code for answer in answers} == {200}
            assert await _readiness(first) == "unavailable"
            created = await second.post("/counterparties", json={"name": "Lento SA"})
            assert created.status_code == 201


async def test_what_redis_holds_that_is_not_a_snapshot_is_ignored(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    redis_server.command("HSET", f"{PREFIX}:snapshot:finsync", "meta", "{not json", "value", "x")
    redis_server.command("SET", f"{PREFIX}:failure:finqware:bt-main", "[1, 2]")
    async with replicas(simulators, count=1, redis_url=redis_server.url) as [http]:
        answer = await http.get("/counterparties")
    assert answer.status_code == 200
    assert {
        s["status"] for s in answer.json()["sources"] if s["source"] != "finqware:brd-legacy"
    } == {"ok"}
    assert simulators.finsync_calls() >= 1
