"""RedisTier's locks (redis-py's Lock) and its repair of bad values, on one real Redis: one
holder at a time, a bounded wait with the holder's remaining lifetime, a stray value without a
lifetime replaced and counted, release by the holder only, this process alone when Redis is
down; a bad value is deleted only while it is still bad."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.services.shared import PREFIX, LockBusyError, RedisTier
from tests.support.redis import RedisServer

pytestmark = pytest.mark.anyio

LOCK = f"{PREFIX}:lock:finsync"


@asynccontextmanager
async def tier_on(server: RedisServer, bad: list[str] | None = None) -> AsyncIterator[RedisTier]:
    tier = RedisTier(server.url, shown_as="test", on_bad_value=None if bad is None else bad.append)
    try:
        yield tier
    finally:
        await tier.close()


def pttl(server: RedisServer, name: str) -> int:
    return int(server.command("PTTL", name).strip().lstrip(b":"))


async def test_a_lock_has_one_holder_at_a_time_and_is_free_once_released(
    redis_server: RedisServer,
) -> None:
    async with tier_on(redis_server) as first, tier_on(redis_server) as second:
        taken = await asyncio.gather(first.try_lock(LOCK, 5), second.try_lock(LOCK, 5))
        holders = [lock for lock in taken if lock is not None]
        assert len(holders) == 1
        assert 4000 < pttl(redis_server, LOCK) <= 5000  # it expires by itself
        assert await second.try_lock(LOCK, 5) is None
        await first.unlock(holders[0])
        assert redis_server.command("EXISTS", LOCK) == b":0\r\n"
        assert await second.try_lock(LOCK, 5) is not None


async def test_a_busy_lock_is_waited_for_then_refused_with_the_holders_remaining_lifetime(
    redis_server: RedisServer,
) -> None:
    redis_server.command("SET", LOCK, "another-replica", "PX", "30000")
    async with tier_on(redis_server) as tier:
        started = time.monotonic()
        with pytest.raises(LockBusyError, match="busy here") as refused:
            async with tier.lock(LOCK, seconds=5, wait_seconds=0.3, busy="busy here"):
                pytest.fail("the lock was held by another")
        assert 0.25 <= time.monotonic() - started < 2
    assert 25 < refused.value.retry_after_seconds <= 30


async def test_a_lock_freed_while_waiting_is_taken_and_released_on_leaving(
    redis_server: RedisServer,
) -> None:
    redis_server.command("SET", LOCK, "another-replica", "PX", "200")
    async with tier_on(redis_server) as tier:
        async with tier.lock(LOCK, seconds=5, wait_seconds=3, poll_seconds=0.02) as fleet_wide:
            assert fleet_wide
            assert redis_server.command("GET", LOCK) != b"$-1\r\n"
        assert redis_server.command("EXISTS", LOCK) == b":0\r\n"


@pytest.mark.parametrize(
    "plant",
    [("SET", LOCK, "stray"), ("RPUSH", LOCK, "stray"), ("HSET", LOCK, "f", "v")],
    ids=["string", "list", "hash"],
)
async def test_a_value_without_a_lifetime_is_replaced_by_the_lock_and_counted_once(
    redis_server: RedisServer, plant: tuple[str, ...]
) -> None:
    redis_server.command(*plant)
    bad: list[str] = []
    async with tier_on(redis_server, bad) as tier:
        lock = await tier.try_lock(LOCK, 5)
        assert lock is not None
        assert redis_server.command("TYPE", LOCK) == b"+string\r\n"
        assert 0 < pttl(redis_server, LOCK) <= 5000
        assert await tier.try_lock(LOCK, 5) is None  # now a lock like any other
    assert bad == ["lock"]


async def test_a_key_of_another_type_with_a_lifetime_holds_the_lock_until_it_expires(
    redis_server: RedisServer,
) -> None:
    redis_server.command("HSET", LOCK, "f", "v")
    redis_server.command("PEXPIRE", LOCK, "200")
    bad: list[str] = []
    async with tier_on(redis_server, bad) as tier:
        assert await tier.try_lock(LOCK, 5) is None
        await asyncio.sleep(0.3)
        assert await tier.try_lock(LOCK, 5) is not None
    assert bad == []


async def test_a_lock_that_expired_and_was_taken_by_another_stays_the_others(
    redis_server: RedisServer,
) -> None:
    async with tier_on(redis_server) as first, tier_on(redis_server) as second:
        late = await first.try_lock(LOCK, 0.1)
        assert late is not None
        await asyncio.sleep(0.2)
        assert await second.try_lock(LOCK, 5) is not None
        await first.unlock(late)  # too late: not its lock any more
        assert redis_server.command("EXISTS", LOCK) == b":1\r\n"
        assert second.up is True  # a lock not owned is not Redis trouble


async def test_with_redis_down_a_lock_is_this_process_alone_and_asked_no_more(
    redis_server: RedisServer,
) -> None:
    async with tier_on(redis_server) as tier:
        assert await tier.ping()
        redis_server.stop()
        started = time.monotonic()
        async with tier.lock(LOCK, seconds=5, wait_seconds=5) as fleet_wide:
            assert not fleet_wide
        async with tier.lock(LOCK, seconds=5, wait_seconds=5) as fleet_wide:
            assert not fleet_wide
        assert time.monotonic() - started < 3  # no wait for a lock nobody can hold
        assert tier.up is False


async def test_a_bad_value_is_deleted_only_while_it_is_still_bad(
    redis_server: RedisServer,
) -> None:
    snapshot = f"{PREFIX}:snapshot:finsync"
    failure = f"{PREFIX}:failure:finsync"
    bad: list[str] = []
    async with tier_on(redis_server, bad) as tier:
        # Rewritten with a good value since it was read: kept.
        redis_server.command("HSET", snapshot, "meta", "good since")
        await tier.bad_value(snapshot, "hash", b"{not json", "an unreadable snapshot")
        assert redis_server.command("EXISTS", snapshot) == b":1\r\n"
        # Still the value read: deleted.
        await tier.bad_value(snapshot, "hash", b"good since", "an unreadable snapshot")
        assert redis_server.command("EXISTS", snapshot) == b":0\r\n"
        # A value of another type is never a good one: deleted, whatever was read.
        redis_server.command("SET", snapshot, "not a hash")
        await tier.bad_value(snapshot, "hash", None, "a value of another type")
        assert redis_server.command("EXISTS", snapshot) == b":0\r\n"
        # Found of another type, but of the right type now: kept.
        redis_server.command("SET", failure, "written since")
        await tier.bad_value(failure, "string", None, "a value of another type")
        assert redis_server.command("EXISTS", failure) == b":1\r\n"
    assert bad == ["snapshot", "snapshot", "snapshot", "failure"]
