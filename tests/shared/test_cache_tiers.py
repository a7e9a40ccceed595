"""SnapshotCache with a shared tier behind it: two caches stand for two replicas."""

from __future__ import annotations

import asyncio

import pytest

from app.cache import SnapshotCache
from app.upstreams.errors import UpstreamError, UpstreamTimeoutError
from tests.support.shared import MemoryShared

pytestmark = pytest.mark.anyio


class Loader:
    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.failing = False
        self.delay = delay

    async def __call__(self) -> str:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.failing:
            raise UpstreamTimeoutError("finsync", "timed out")
        return f"value-{self.calls}"


def replica(shared: MemoryShared[str], *, ttl: float = 30, swr: bool = False) -> SnapshotCache[str]:
    return SnapshotCache[str](
        ttl_seconds=ttl,
        stale_if_error_seconds=300,
        min_refresh_interval_seconds=10,
        failure_backoff_seconds=60,
        stale_on=UpstreamError,
        stale_while_revalidate=swr,
        shared=shared,
    )


async def test_a_fresh_local_hit_never_asks_the_shared_tier() -> None:
    shared, load = MemoryShared[str](), Loader()
    cache = replica(shared)
    await cache.get("k", load)
    asked = sum(shared.calls.values())
    for _ in range(10):
        assert (await cache.get("k", load)).status == "fresh"
    assert sum(shared.calls.values()) == asked


async def test_replicas_load_once_and_share_the_version_and_age() -> None:
    shared, load = MemoryShared[str](), Loader(delay=0.05)
    first, second = replica(shared), replica(shared)
    answers = await asyncio.gather(
        *(cache.get("k", load) for cache in (first, second) for _ in range(20))
    )
    assert load.calls == 1
    assert {answer.value for answer in answers} == {"value-1"}
    assert len({answer.version for answer in answers}) == 1
    assert {answer.fetched_at for answer in answers} == {answers[0].fetched_at}


async def test_a_forced_refresh_inside_the_floor_takes_another_replicas_load() -> None:
    shared, load = MemoryShared[str](), Loader()
    first, second = replica(shared), replica(shared)
    await first.get("k", load)
    await second.get("k", load, refresh=True)
    assert load.calls == 1


async def test_a_failure_backs_off_on_every_replica() -> None:
    shared, load = MemoryShared[str](), Loader()
    load.failing = True
    first, second = replica(shared), replica(shared)
    with pytest.raises(UpstreamTimeoutError):
        await first.get("k", load)
    with pytest.raises(UpstreamTimeoutError):
        await second.get("k", load)
    with pytest.raises(UpstreamTimeoutError):
        await second.get("k", load)
    assert load.calls == 1


async def test_an_invalidated_key_loads_again_even_if_the_shared_snapshot_is_fresh() -> None:
    shared, load = MemoryShared[str](), Loader()
    cache = replica(shared)
    await cache.get("k", load)
    cache.invalidate("k")
    assert (await cache.get("k", load)).value == "value-2"
    assert load.calls == 2
    # The new load is what the other replicas now find.
    assert (await replica(shared).get("k", load)).value == "value-2"


async def test_an_unreachable_tier_leaves_each_replica_on_its_own() -> None:
    shared, load = MemoryShared[str](), Loader()
    shared.unreachable = True
    first, second = replica(shared), replica(shared)
    assert (await first.get("k", load)).value == "value-1"
    assert (await second.get("k", load)).value == "value-2"
    assert (await first.get("k", load)).value == "value-1"  # its own cache still serves


async def test_a_replica_that_cannot_load_serves_the_shared_snapshot_stale() -> None:
    shared, load = MemoryShared[str](), Loader()
    await replica(shared, ttl=0.05).get("k", load)
    await asyncio.sleep(0.1)
    load.failing = True
    answer = await replica(shared, ttl=0.05).get("k", load)
    assert (answer.value, answer.status) == ("value-1", "stale")
    assert isinstance(answer.error, UpstreamTimeoutError)


async def test_a_replica_waits_for_the_one_loading_instead_of_loading() -> None:
    shared, load = MemoryShared[str](), Loader(delay=0.1)
    first, second = replica(shared), replica(shared)
    started = asyncio.ensure_future(first.get("k", load))
    await asyncio.sleep(0.02)  # the first replica holds the key's lock
    waited = await second.get("k", load)
    assert waited.value == (await started).value == "value-1"
    assert load.calls == 1


async def test_a_failure_another_replica_learnt_is_carried_on_this_ones_stale_answers() -> None:
    shared, load = MemoryShared[str](), Loader()
    first, second = replica(shared, ttl=0.05, swr=True), replica(shared, ttl=0.05, swr=True)
    await first.get("k", load)
    assert (await second.get("k", load)).value == "value-1"  # from the shared tier
    await asyncio.sleep(0.1)  # past the TTL on both
    load.failing = True
    assert (await first.get("k", load)).error is None  # its refresh runs behind it
    for _ in range(3):
        await asyncio.sleep(0)
    assert isinstance((await first.get("k", load)).error, UpstreamTimeoutError)
    # The second replica's refresh finds the failure's back-off in the shared tier.
    assert (await second.get("k", load)).error is None
    for _ in range(3):
        await asyncio.sleep(0)
    answer = await second.get("k", load)
    assert (answer.value, answer.status) == ("value-1", "stale")
    assert isinstance(answer.error, UpstreamTimeoutError)
    assert load.calls == 2  # the second replica never asked the upstream
