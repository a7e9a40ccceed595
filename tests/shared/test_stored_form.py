"""The stored form's version on a real Redis: replicas of two versions never read each other's
values (the key prefix), and a value of another form under this version's key is a miss,
counted and deleted, never a crash and never served."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest
import zstandard

from app.cache import SharedSnapshot
from app.domain.interpret import Interpreted
from app.domain.snapshot import encode_json
from app.services.codec import SCHEMA_VERSION, decode_interpreted, encode_interpreted
from app.services.shared import PREFIX, RedisSnapshots, RedisTier
from tests.shared.test_codec import _first_form, _snapshot
from tests.support.redis import RedisServer

pytestmark = pytest.mark.anyio

FETCHED = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@asynccontextmanager
async def snapshots(
    redis_server: RedisServer, bad: list[str]
) -> AsyncIterator[RedisSnapshots[Interpreted]]:
    tier = RedisTier(redis_server.url, shown_as="test", on_bad_value=bad.append)
    try:
        yield RedisSnapshots(
            tier, encode=encode_interpreted, decode=decode_interpreted, lock_seconds=5
        )
    finally:
        await tier.close()


async def plant(redis_server: RedisServer, name: str, value: bytes) -> None:
    """A snapshot's hash as a replica writes it (binary value: through redis-py)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_server.url)
    try:
        await redis.hset(name, mapping={"meta": _meta(value), "value": value})
    finally:
        await redis.aclose()


def _meta(data: bytes) -> str:
    return json.dumps(
        {
            "loaded_at": time.time(),
            "fetched_at": FETCHED.isoformat(),
            "version": 3,
            "bytes": len(data),
        }
    )


def test_the_prefix_names_the_stored_form() -> None:
    assert SCHEMA_VERSION == 2
    assert PREFIX == "tesoro:v2"


async def test_a_snapshot_comes_back_from_redis_equal_and_served_as_written(
    redis_server: RedisServer,
) -> None:
    original = _snapshot(Decimal("1.98E-11"))
    bad: list[str] = []
    async with snapshots(redis_server, bad) as shared:
        await shared.write(
            "finsync",
            SharedSnapshot(value=original, loaded_at=time.time(), fetched_at=FETCHED, version=3),
            keep_seconds=60,
        )
        read = await shared.fetch("finsync")
    assert read is not None
    assert read.value == original
    assert encode_json(read.value.counterparties) == encode_json(original.counterparties)
    assert b'"amount":"0.0000000000198"' in encode_json(read.value.counterparties)
    assert redis_server.command("EXISTS", f"{PREFIX}:snapshot:finsync") == b":1\r\n"
    assert bad == []


async def test_a_replica_of_the_first_stored_form_is_not_read(
    redis_server: RedisServer,
) -> None:
    """What a version-1 replica wrote during a rolling update: under its own prefix, which
    this version never reads nor deletes (and that one never reads this one's)."""
    first = zstandard.ZstdCompressor().compress(_first_form(_raw_of(_snapshot(Decimal("7")))))
    old_name = "tesoro:v1:snapshot:finsync"
    await plant(redis_server, old_name, first)
    bad: list[str] = []
    async with snapshots(redis_server, bad) as shared:
        assert await shared.fetch("finsync") is None
        state = await shared.read("finsync")
    assert state.loaded_at is None
    assert bad == []
    assert redis_server.command("EXISTS", old_name) == b":1\r\n"


@pytest.mark.parametrize("form", ["first", "truncated", "corrupt", "another envelope"])
async def test_a_value_of_another_form_under_this_versions_key_is_a_miss_deleted(
    redis_server: RedisServer, form: str
) -> None:
    good = encode_interpreted(_snapshot(Decimal("1520.50")))
    value = {
        "first": zstandard.ZstdCompressor().compress(_first_form(_raw_of(_snapshot(Decimal(7))))),
        "truncated": good[: len(good) // 2],
        "corrupt": good[:-6] + bytes([good[-6] ^ 0x01]) + good[-5:],
        "another envelope": zstandard.ZstdCompressor().compress(
            msgspec.json.encode([SCHEMA_VERSION + 1, [], [], []])
        ),
    }[form]
    name = f"{PREFIX}:snapshot:finsync"
    await plant(redis_server, name, value)
    bad: list[str] = []
    async with snapshots(redis_server, bad) as shared:
        assert await shared.fetch("finsync") is None
    assert bad == ["snapshot"]
    assert redis_server.command("EXISTS", name) == b":0\r\n"


def _raw_of(value: Interpreted) -> bytes:
    return zstandard.ZstdDecompressor().decompress(encode_interpreted(value))
