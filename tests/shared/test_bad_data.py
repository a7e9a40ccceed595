"""Redis data trouble is per key: bad values under every kind of tesoro key, two replicas
creating one name at once on top of them, and a create lock left by a replica that died."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.domain.names import name_key
from app.services import shared
from tests.support.redis import RedisServer, replicas
from tests.support.simulators import Simulators

pytestmark = pytest.mark.anyio

PREFIX = shared.PREFIX
CREATES = "POST /api/clients"


def create_lock(name: str) -> str:
    return f"{PREFIX}:create-lock:" + hashlib.sha256(name_key(name).encode()).hexdigest()[:32]


def idempotency_digest(key: str) -> str:
    # Without caller authentication the caller's name is empty.
    return hashlib.sha256(f"\x00{key}".encode()).hexdigest()


def plant_bad_values(redis: RedisServer, *, name: str, idempotency_key: str) -> None:
    """A value of another type, or bytes tesoro cannot read, under every kind of its keys;
    none with a lifetime."""
    digest = idempotency_digest(idempotency_key)
    for command in (
        ("SET", f"{PREFIX}:snapshot:finsync", "not a hash"),
        ("HSET", f"{PREFIX}:snapshot:finqware:bt-main", "meta", "{not json", "value", "x"),
        (
            "HSET",
            f"{PREFIX}:snapshot:finqware:ing-ops",
            "meta",
            f'{{"loaded_at": {time.time()}, "fetched_at": "2026-01-01T00:00:00+00:00", '
            '"version": 7}',
            "value",
            "\x00garbage, not zstd",
        ),
        ("HSET", f"{PREFIX}:failure:finsync", "type", "UpstreamUnauthorizedError"),
        ("SET", f"{PREFIX}:failure:finqware:ing-ops", "\x01\x02 not json"),
        ("RPUSH", f"{PREFIX}:lock:finsync", "stray"),
        ("SADD", create_lock(name), "stray"),
        ("HSET", f"{PREFIX}:idempotency:{digest}", "status", "201"),
        ("SET", f"{PREFIX}:idempotency-lock:{digest}", "stray"),
    ):
        assert not redis.command(*command).startswith(b"-"), command


def key_type(redis: RedisServer, name: str) -> bytes:
    return redis.command("TYPE", name).strip()


async def metric(http: httpx2.AsyncClient, name: str, **labels: str) -> float:
    text = (await http.get("/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def test_bad_values_under_every_kind_of_key_are_misses_and_creates_stay_single(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    name, other, key = "Dos Réplicas SA", "Sin Clave SA", "create-once-9c1"
    plant_bad_values(redis_server, name=name, idempotency_key=key)
    redis_server.command("SADD", create_lock(other), "stray")
    simulators.finsync_faults.delay_seconds = 0.1  # the creates overlap
    async with replicas(simulators, redis_url=redis_server.url) as clients:
        started = time.monotonic()
        reads = await asyncio.gather(*(http.get("/positions") for http in clients))
        keyed = await asyncio.gather(
            *(
                http.post("/counterparties", json={"name": name}, headers={"Idempotency-Key": key})
                for http in clients
            )
        )
        unkeyed = await asyncio.gather(
            *(http.post("/counterparties", json={"name": other}) for http in clients)
        )
        elapsed = time.monotonic() - started
        readiness = [(await http.get("/readyz")).json()["redis"] for http in clients]
        redis_up = [await metric(http, "tesoro_redis_up") for http in clients]
        bad: dict[str, float] = {}
        for kind in (
            "snapshot",
            "failure",
            "lock",
            "create-lock",
            "idempotency",
            "idempotency-lock",
        ):
            bad[kind] = sum(
                [await metric(http, "tesoro_redis_bad_values_total", kind=kind) for http in clients]
            )

    for answer in reads:
        assert answer.status_code == 200
        states = {s["source"]: s["status"] for s in answer.json()["sources"]}
        assert states["finsync"] == states["finqware:bt-main"] == "ok"
    # No stray value held a lock: nobody waited out a lock's wait (the snapshot lock's is 18 s).
    assert elapsed < 12
    # One FinSync create per name; the other request replays the first answer or is a 409.
    assert simulators.finsync_calls(CREATES) == 2
    assert sorted(answer.status_code for answer in keyed) in ([201, 201], [201, 409])
    assert len({answer.json()["id"] for answer in keyed if answer.status_code == 201}) == 1
    assert sorted(answer.status_code for answer in unkeyed) == [201, 409]
    # Redis was up the whole time: one bad key is not the tier.
    assert readiness == ["ok", "ok"]
    assert redis_up == [1.0, 1.0]
    assert all(count >= 1 for count in bad.values()), bad
    # Repaired: deleted, or replaced by a good value.
    assert key_type(redis_server, f"{PREFIX}:snapshot:finsync") == b"+hash"
    assert key_type(redis_server, f"{PREFIX}:failure:finsync") == b"+none"
    assert key_type(redis_server, f"{PREFIX}:lock:finsync") == b"+none"
    assert key_type(redis_server, create_lock(name)) == b"+none"
    assert key_type(redis_server, f"{PREFIX}:idempotency:{idempotency_digest(key)}") == b"+string"


async def test_a_create_lock_left_by_a_dead_replica_is_a_quick_503_with_retry_after(
    simulators: Simulators, redis_server: RedisServer
) -> None:
    name = "Réplica Caída SA"
    # What a replica killed while creating this name leaves: its lock, for the lock's lifetime.
    redis_server.command("SET", create_lock(name), "token-of-a-dead-replica", "PX", "56000")
    async with replicas(simulators, count=1, redis_url=redis_server.url) as [http]:
        started = time.monotonic()
        answer = await http.post("/counterparties", json={"name": name})
        waited = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["type"] == "/problems/create-in-progress"
    assert 4.5 <= waited < 10  # the bounded wait (5 s), not the lock's 56 s
    assert 45 <= int(answer.headers["retry-after"]) <= 52  # when the lock is free at the latest
    assert simulators.finsync_calls(CREATES) == 0
