"""SnapshotCache: freshness, coalescing, stale-if-error and forced refresh limits."""

from __future__ import annotations

import asyncio
import threading
import weakref
from datetime import UTC, datetime

import pytest

from app.cache import SnapshotCache
from app.metrics import Metrics
from app.upstreams.errors import ConsentExpiredError, UpstreamError, UpstreamTimeoutError

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Loader:
    """Counts loads; fails while `failing` is set; waits on `gate` when given one."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failing:
            raise UpstreamTimeoutError("finsync", "timed out")
        return f"value-{self.calls}"


def make(clock: Clock) -> SnapshotCache[str]:
    return SnapshotCache[str](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        min_refresh_interval_seconds=10,
        stale_on=UpstreamError,
        clock=clock,
    )


async def test_fresh_value_is_served_without_loading_again() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    first = await cache.get("k", load)
    clock.now += 29
    second = await cache.get("k", load)
    assert (first.value, second.value) == ("value-1", "value-1")
    assert load.calls == 1
    assert second.status == "fresh"
    assert second.expires_in_seconds == pytest.approx(1)


async def test_expired_value_is_loaded_again() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    await cache.get("k", load)
    clock.now += 31
    assert (await cache.get("k", load)).value == "value-2"


async def test_concurrent_callers_share_one_load() -> None:
    clock, load = Clock(), Loader()
    load.gate = asyncio.Event()
    cache = make(clock)
    callers = [asyncio.create_task(cache.get("k", load)) for _ in range(200)]
    await asyncio.sleep(0)
    load.gate.set()
    results = await asyncio.gather(*callers)
    assert load.calls == 1
    assert {r.value for r in results} == {"value-1"}


async def test_a_cancelled_caller_does_not_cancel_the_shared_load() -> None:
    clock, load = Clock(), Loader()
    load.gate = asyncio.Event()
    cache = make(clock)
    leaving = asyncio.create_task(cache.get("k", load))
    staying = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    leaving.cancel()
    load.gate.set()
    assert (await staying).value == "value-1"
    assert load.calls == 1


async def test_upstream_failure_serves_last_good_value_as_stale() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    await cache.get("k", load)
    clock.now += 60
    load.failing = True
    stale = await cache.get("k", load)
    assert stale.value == "value-1"
    assert stale.status == "stale"
    assert isinstance(stale.error, UpstreamError)
    assert stale.error.code == "timeout"
    assert stale.age_seconds == pytest.approx(60)
    assert stale.expires_in_seconds == 0


async def test_failure_with_nothing_cached_raises() -> None:
    load = Loader()
    load.failing = True
    with pytest.raises(UpstreamTimeoutError):
        await make(Clock()).get("k", load)


async def test_stale_data_is_not_served_past_the_stale_window() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    await cache.get("k", load)
    clock.now += 30 + 300 + 1
    load.failing = True
    with pytest.raises(UpstreamTimeoutError):
        await cache.get("k", load)


async def test_forced_refresh_reloads_but_not_more_often_than_the_minimum_interval() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    await cache.get("k", load)
    clock.now += 5
    assert (await cache.get("k", load, refresh=True)).value == "value-1"
    clock.now += 6
    assert (await cache.get("k", load, refresh=True)).value == "value-2"
    assert load.calls == 2


async def test_invalidate_forces_a_load_but_keeps_the_value_for_errors() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    await cache.get("k", load)
    cache.invalidate("k")
    load.failing = True
    stale = await cache.get("k", load)
    assert stale.status == "stale"
    assert load.calls == 2


async def test_a_failure_is_remembered_for_the_backoff_so_the_upstream_is_not_hammered() -> None:
    clock, load = Clock(), Loader()
    cache = SnapshotCache[str](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        failure_backoff_seconds=15,
        stale_on=UpstreamError,
        clock=clock,
    )
    load.failing = True
    for _ in range(5):
        with pytest.raises(UpstreamTimeoutError):
            await cache.get("k", load, refresh=True)
    assert load.calls == 1
    clock.now += 16
    load.failing = False
    assert (await cache.get("k", load)).value == "value-2"


async def test_only_the_failures_it_is_told_of_are_covered_by_stale_data() -> None:
    clock = Clock()
    cache = make(clock)
    await cache.get("k", Loader())
    clock.now += 60

    async def buggy() -> str:
        raise KeyError("a bug of ours")

    with pytest.raises(KeyError):
        await cache.get("k", buggy)


# --- stale-while-revalidate -----------------------------------------------------------------


def make_swr(clock: Clock) -> SnapshotCache[str]:
    return SnapshotCache[str](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        failure_backoff_seconds=15,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
        clock=clock,
    )


async def test_past_its_ttl_a_value_is_served_at_once_while_one_load_runs_behind_it() -> None:
    clock, load = Clock(), Loader()
    cache = make_swr(clock)
    await cache.get("k", load)
    clock.now += 31
    load.gate = asyncio.Event()  # the upstream is slow now
    answers = await asyncio.gather(*(cache.get("k", load) for _ in range(50)))
    # Nobody waited for the slow upstream, and only one load was started behind them.
    assert {(a.value, a.status) for a in answers} == {("value-1", "stale")}
    assert all(a.expires_in_seconds == 0 for a in answers)
    assert load.calls == 2
    load.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    after = await cache.get("k", load)
    assert (after.value, after.status) == ("value-2", "fresh")
    assert after.version > answers[0].version
    assert load.calls == 2


async def test_a_failed_revalidation_keeps_serving_stale_and_waits_out_the_backoff() -> None:
    clock, load = Clock(), Loader()
    cache = make_swr(clock)
    await cache.get("k", load)
    clock.now += 31
    load.failing = True
    first = await cache.get("k", load)
    await asyncio.sleep(0)
    second = await cache.get("k", load)
    assert (first.value, second.value, second.status) == ("value-1", "value-1", "stale")
    assert load.calls == 2  # one failed load; the back-off holds the next


async def test_an_invalidated_value_is_not_served_stale_the_next_read_waits_for_a_load() -> None:
    clock, load = Clock(), Loader()
    cache = make_swr(clock)
    await cache.get("k", load)
    cache.invalidate("k")
    again = await cache.get("k", load)
    assert (again.value, again.status) == ("value-2", "fresh")


async def test_each_kind_of_failure_waits_out_its_own_backoff() -> None:
    clock = Clock()

    def backoff(exc: Exception) -> float:
        return 3600 if isinstance(exc, ConsentExpiredError) else 15

    cache = SnapshotCache[str](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        failure_backoff_seconds=backoff,
        stale_on=UpstreamError,
        clock=clock,
    )
    calls = 0

    async def expired() -> str:
        nonlocal calls
        calls += 1
        raise ConsentExpiredError("finqware:brd", "expired")

    for step_seconds in (0, 16, 600, 2900):
        clock.now += step_seconds
        with pytest.raises(ConsentExpiredError):
            await cache.get("k", expired)
    assert calls == 1  # asked once within the hour
    clock.now += 100
    with pytest.raises(ConsentExpiredError):
        await cache.get("k", expired)
    assert calls == 2


async def test_answers_at_once_says_whether_a_read_would_wait_for_a_load() -> None:
    clock, load = Clock(), Loader()
    cache = make(clock)
    assert not cache.answers_at_once("finsync")  # nothing held: a read loads
    await cache.get("finsync", load)
    assert cache.answers_at_once("finsync")
    assert cache.answers_at_once("finsync", refresh=True)  # within the refresh floor
    clock.now += 31
    assert not cache.answers_at_once("finsync")  # past the TTL, without stale-while-revalidate
    load.failing = True
    await cache.get("finsync", load)  # fails, served stale; the failure is not remembered
    assert not cache.answers_at_once("finsync")


async def test_answers_at_once_past_the_ttl_with_stale_while_revalidate() -> None:
    clock, load = Clock(), Loader()
    cache = SnapshotCache[str](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        failure_backoff_seconds=60,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
        clock=clock,
    )
    await cache.get("finsync", load)
    clock.now += 31
    assert cache.answers_at_once("finsync")
    assert not cache.answers_at_once("finsync", refresh=True)
    cache.invalidate("finsync")
    assert not cache.answers_at_once("finsync")
    load.failing = True
    await cache.get("finsync", load)
    assert cache.answers_at_once("finsync")  # the failure is re-raised at once, backed off


class Held:
    """A stored value whose freeing can be watched."""


async def test_a_replaced_value_is_freed_off_the_event_loop_and_a_kept_one_is_not() -> None:
    clock = Clock()
    freed_on: list[str] = []
    freed = threading.Event()
    loads: list[weakref.finalize[[], Held]] = []

    async def load() -> Held:
        value = Held()

        def seen() -> None:
            freed_on.append(threading.current_thread().name)
            freed.set()

        loads.append(weakref.finalize(value, seen))
        return value

    cache = SnapshotCache[Held](
        ttl_seconds=30, stale_if_error_seconds=300, stale_on=UpstreamError, clock=clock
    )
    await cache.get("finsync", load)
    cache.invalidate("finsync")  # the same value, kept for stale-if-error: nothing freed
    assert freed_on == []
    await cache.get("finsync", load)
    # The first value's last reference went in a worker thread, never on the loop's.
    assert await asyncio.to_thread(freed.wait, 5)
    assert freed_on == ["tesoro-let-go"]
    assert loads[1].alive


# --- stale says why, and what is told of the loads -------------------------------------------


async def test_a_failed_refresh_is_carried_on_every_stale_answer_until_a_load_succeeds() -> None:
    clock, load = Clock(), Loader()
    cache = make_swr(clock)
    await cache.get("k", load)
    clock.now += 31
    load.failing = True
    running = await cache.get("k", load)
    assert (running.status, running.error) == ("stale", None)  # its refresh just started
    await asyncio.sleep(0)
    after = [await cache.get("k", load) for _ in range(3)]
    assert all(isinstance(a.error, UpstreamTimeoutError) for a in after)
    held = cache.peek("k")
    assert held is not None
    assert isinstance(held.error, UpstreamTimeoutError)
    clock.now += 16  # the back-off is over: another refresh runs, the failure still stands
    load.gate = asyncio.Event()
    retrying = await cache.get("k", load)
    assert retrying.status == "stale"
    assert isinstance(retrying.error, UpstreamTimeoutError)
    load.failing = False
    load.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    healed = await cache.get("k", load)
    assert (healed.status, healed.error) == ("fresh", None)


async def test_the_state_of_the_loads_is_told_as_it_changes() -> None:
    clock, load = Clock(), Loader()
    told: list[tuple[str, str]] = []
    cache = SnapshotCache[str](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        failure_backoff_seconds=15,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
        clock=clock,
        on_state=lambda key, state: told.append((key, state)),
    )
    load.failing = True
    with pytest.raises(UpstreamTimeoutError):
        await cache.get("a", load)
    load.failing = False
    await cache.get("k", load)
    clock.now += 31
    load.gate = asyncio.Event()
    await cache.get("k", load)  # past its TTL: a refresh runs behind it
    load.failing = True
    load.gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    clock.now += 16
    await cache.get("k", load)  # another refresh, after a failure: not merely past its TTL
    await asyncio.sleep(0)
    load.failing = False
    clock.now += 16
    await cache.get("k", load)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert told == [
        ("a", "failed"),
        ("k", "loaded"),
        ("k", "refreshing"),
        ("k", "failed_serving_stale"),
        ("k", "failed_serving_stale"),
        ("k", "loaded"),
    ]


# --- one moment -------------------------------------------------------------------------------


def stamped_cache(clock: Clock, wall: float) -> SnapshotCache[datetime]:
    return SnapshotCache[datetime](
        ttl_seconds=30,
        stale_if_error_seconds=300,
        stale_on=UpstreamError,
        clock=clock,
        wall_clock=lambda: wall,
        stamp=lambda value: value,
    )


async def test_a_value_s_own_stamp_is_its_fetched_at() -> None:
    wall = 1_800_000_000.0
    received = datetime.fromtimestamp(wall - 2.5, UTC)

    async def load() -> datetime:
        return received

    answer = await stamped_cache(Clock(), wall).get("k", load)
    assert answer.fetched_at == answer.value == received


async def test_a_stamp_in_the_future_is_shown_as_now() -> None:
    wall = 1_800_000_000.0

    async def load() -> datetime:
        return datetime.fromtimestamp(wall + 600, UTC)

    answer = await stamped_cache(Clock(), wall).get("k", load)
    assert answer.fetched_at == datetime.fromtimestamp(wall, UTC)


def test_a_hit_counter_counts_what_hit_counts_with_any_observer() -> None:
    # A plain observer is told (key, "hit") per call; the metrics' observer hands out its
    # child's own increment, into the same series `hit` counts into.
    told: list[tuple[str, str]] = []
    plain: SnapshotCache[int] = SnapshotCache[int](
        ttl_seconds=60,
        stale_if_error_seconds=0,
        observe=lambda key, outcome: told.append((key, outcome)),
    )
    count = plain.hit_counter("finsync")
    count()
    count()
    plain.hit("finsync")
    assert told == [("finsync", "hit")] * 3

    metrics = Metrics()
    counted: SnapshotCache[int] = SnapshotCache[int](
        ttl_seconds=60, stale_if_error_seconds=0, observe=metrics.cache_observer("finsync")
    )
    counted.hit("finsync")
    count = counted.hit_counter("finsync")
    count()
    count()
    counted.hit_counter("other")()
    value = metrics.registry.get_sample_value
    labels = {"cache": "finsync", "outcome": "hit"}
    assert value("tesoro_cache_events_total", {**labels, "connection": "finsync"}) == 3
    assert value("tesoro_cache_events_total", {**labels, "connection": "other"}) == 1

    SnapshotCache[int](ttl_seconds=60, stale_if_error_seconds=0).hit_counter(
        "finsync"
    )()  # no observer: counted by nobody
