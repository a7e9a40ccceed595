"""The observer's lease (redis-py's Lock) on a real Redis: one holder, renewed to its full
lifetime by its holder only, taken by another once it expires or is released; the old holder
then knows it no longer holds it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from app.services.observing import Lease
from app.services.shared import RedisTier
from tests.support.redis import RedisServer

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def tier_on(server: RedisServer) -> AsyncIterator[RedisTier]:
    tier = RedisTier(server.url, shown_as="test")
    try:
        yield tier
    finally:
        await tier.close()


def lease_ms(server: RedisServer, tier: RedisTier) -> int:
    return int(server.command("PTTL", tier.key("history", "observer")).strip().lstrip(b":"))


async def test_the_holder_renews_its_lease_and_nobody_else_takes_it(
    redis_server: RedisServer,
) -> None:
    async with tier_on(redis_server) as one, tier_on(redis_server) as other:
        first, second = Lease(one, seconds=0.6), Lease(other, seconds=0.6)
        assert await first.hold() is True
        assert await second.hold() is False
        for _ in range(4):  # 1.2 s in all: twice the lifetime, renewed along the way
            await asyncio.sleep(0.3)
            assert await first.hold() is True
            assert 450 < lease_ms(redis_server, one) <= 600  # back to its full lifetime
            assert await second.hold() is False


async def test_an_expired_lease_passes_on_and_its_old_holder_knows(
    redis_server: RedisServer,
) -> None:
    async with tier_on(redis_server) as one, tier_on(redis_server) as other:
        first, second = Lease(one, seconds=0.3), Lease(other, seconds=0.3)
        assert await first.hold() is True
        await asyncio.sleep(0.5)  # the holder stopped renewing (a dead replica)
        assert await second.hold() is True
        assert await first.hold() is False
        assert await second.hold() is True


async def test_a_released_lease_is_free_at_once_and_a_release_never_frees_anothers(
    redis_server: RedisServer,
) -> None:
    async with tier_on(redis_server) as one, tier_on(redis_server) as other:
        first, second = Lease(one, seconds=5), Lease(other, seconds=5)
        assert await first.hold() is True
        await first.release()
        assert await second.hold() is True
        # The first took it again in its mind only: a release now must not free the second's.
        first.held = True
        await first.release()
        assert await second.hold() is True
        assert lease_ms(redis_server, other) > 4000
