"""`Treasury.unchanged`: the last gather of a set of connections, reused without asking them
while nothing it depends on has changed, is exactly what a gather would give now; a reload, a
failure, a TTL lapse, the end of a back-off, a notice's boundary or a snapshot adopted from
the shared tier ends it. The caches are real (`SnapshotCache`), on clocks the test moves."""

from __future__ import annotations

import gc
import threading
import weakref
from datetime import UTC, datetime, timedelta

import httpx2
import pytest
from pydantic import SecretStr

from app.cache import Cached, Lease, SnapshotCache
from app.domain.interpret import BalanceOrders, Interpreted
from app.domain.models import ResponseWarning, Source
from app.domain.snapshot import Counterparty
from app.services.treasury import (
    CONSENT_EXPIRY_NOTICE,
    FinqwareConnection,
    Gathered,
    Treasury,
)
from app.settings import ConsentSettings
from app.upstreams.errors import UpstreamError, UpstreamUnavailableError
from app.upstreams.finqware import FinqwareClient
from tests.support.shared import MemoryShared

pytestmark = pytest.mark.anyio

TTL_SECONDS = 60.0
BACKOFF_SECONDS = 15.0
EXPIRES_AT = datetime(2026, 12, 31, tzinfo=UTC)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Wall:
    """A wall clock the test moves (the notices' and the moments')."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def consent(key: str, expires_at: datetime | None = EXPIRES_AT) -> FinqwareConnection:
    """A real Finqware connection (its notices are what is tested), never loaded: its
    client is never asked."""
    return FinqwareConnection(
        consent=ConsentSettings(
            key=key,
            credentials_id=SecretStr("credentials"),
            access_token=SecretStr("token"),
            tenant_user_id="tenant",
            expires_at=expires_at,
        ),
        client=FinqwareClient(httpx2.AsyncClient(), client_id="id", client_secret=SecretStr("s")),
        cache=SnapshotCache[Interpreted](ttl_seconds=1, stale_if_error_seconds=0),
        accounts_cache=SnapshotCache(ttl_seconds=1, stale_if_error_seconds=0),
        orders=BalanceOrders(current=(), current_fallback=(), available=()),
    )


class Scripted:
    """A connection over a real `SnapshotCache`, whose loads the test scripts (data, or a
    failure); its notices are a real consent's when it has one."""

    def __init__(
        self,
        key: str,
        cache: SnapshotCache[Interpreted],
        notices_of: FinqwareConnection | None = None,
    ) -> None:
        self.key = key
        self.source = Source.finsync
        self.cache = cache
        self.notices_of = notices_of
        self.failing = False
        self.loads = 0

    async def load(self) -> Interpreted:
        self.loads += 1
        if self.failing:
            raise UpstreamUnavailableError(self.key, "down")
        # A warning of each load's own: what an answer holds of the snapshot it came from.
        said = ResponseWarning(code="loaded", message=f"load {self.loads}", source=self.key)
        return Interpreted((), (said,))

    async def snapshot(self, *, refresh: bool) -> Cached[Interpreted]:
        return await self.cache.get(self.key, self.load, refresh=refresh)

    def invalidate(self) -> None:
        self.cache.invalidate(self.key)

    def last(self) -> Cached[Interpreted] | None:
        return self.cache.peek(self.key)

    def answers_at_once(self, *, refresh: bool) -> bool:
        return self.cache.answers_at_once(self.key, refresh=refresh)

    def placeholder(self) -> Counterparty | None:
        return None

    def notices(self, now: datetime) -> list[ResponseWarning]:
        return [] if self.notices_of is None else self.notices_of.notices(now)

    def notices_until(self, now: datetime) -> datetime | None:
        return None if self.notices_of is None else self.notices_of.notices_until(now)

    def lease(self) -> Lease | None:
        return self.cache.lease(self.key)


def cache(clock: Clock, **options: object) -> SnapshotCache[Interpreted]:
    return SnapshotCache[Interpreted](
        ttl_seconds=TTL_SECONDS,
        stale_if_error_seconds=3600,
        failure_backoff_seconds=BACKOFF_SECONDS,
        stale_on=UpstreamError,
        stale_while_revalidate=True,
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


def said(gathered: Gathered) -> tuple[object, ...]:
    """Everything an answer built from `gathered` says, and its headers' max-age."""
    return (
        gathered.state,
        gathered.sources,
        gathered.complete,
        gathered.max_age_seconds,
        gathered.generated_at,
        gathered.warnings,
        gathered.data,
    )


def notices(gathered: Gathered) -> list[ResponseWarning]:
    return [warning for warning in gathered.warnings if warning.code == "consent_expiring"]


async def reused(treasury: Treasury, connections: list[Scripted]) -> Gathered | None:
    """`unchanged` now, checked against a gather made right after it (which holds anew)."""
    keys = tuple(connection.key for connection in connections)
    unchanged = treasury.unchanged(keys)
    gathered = await treasury.gather(connections=connections)
    if unchanged is not None:
        assert said(unchanged) == said(gathered)
    return unchanged


async def test_the_state_is_reused_until_a_reload() -> None:
    clock = Clock()
    shared_cache = cache(clock)
    a, b = Scripted("a", shared_cache), Scripted("b", shared_cache)
    treasury = Treasury([a, b])
    assert treasury.unchanged(("a", "b")) is None  # nothing gathered yet
    first = await treasury.gather()
    assert first.max_age_seconds == 60
    assert await reused(treasury, [a, b]) is not None
    clock.now += 10.5
    again = await reused(treasury, [a, b])
    assert again is not None
    assert again.max_age_seconds == 49  # counted down as a gather counts it
    assert again.state == first.state
    assert (a.loads, b.loads) == (1, 1)  # never asked again

    b.invalidate()  # a reload is asked for: the next read loads
    assert treasury.unchanged(("a", "b")) is None
    reloaded = await treasury.gather()
    assert reloaded.state != first.state
    assert b.loads == 2
    assert await reused(treasury, [a, b]) is not None


async def test_a_refetch_that_stores_new_data_ends_it() -> None:
    clock = Clock()
    a = Scripted("a", cache(clock))
    treasury = Treasury([a])
    await treasury.gather()
    await treasury.gather(refresh=True)  # new data, stored: another version
    assert treasury.unchanged(("a",)) is None
    await treasury.gather()
    assert await reused(treasury, [a]) is not None


async def test_a_failure_ends_it() -> None:
    clock = Clock()
    a, b = Scripted("a", cache(clock)), Scripted("b", cache(clock))
    treasury = Treasury([a, b])
    first = await treasury.gather()
    b.failing = True
    failed = await treasury.gather(refresh=True)  # b's refetch fails: b is shown stale
    assert treasury.unchanged(("a", "b")) is None
    # Fresh again without a refetch, but its condition moved twice since `first`: a new
    # moment, a new data state.
    after = await treasury.gather()
    assert failed.state != first.state
    assert after.state not in (first.state, failed.state)
    assert await reused(treasury, [a, b]) is not None


async def test_a_ttl_lapse_ends_it_at_the_instant_a_gather_would_see_it() -> None:
    clock = Clock()
    a = Scripted("a", cache(clock))
    treasury = Treasury([a])
    await treasury.gather()
    clock.now += TTL_SECONDS - 0.001
    last = await reused(treasury, [a])
    assert last is not None
    assert last.max_age_seconds == 0
    clock.now += 0.001
    assert treasury.unchanged(("a",)) is None
    lapsed = await treasury.gather()  # stale at once, a load behind it
    assert lapsed.sources[0].status == "stale"
    assert treasury.unchanged(("a",)) is None  # a stale read may start a load: never reused


async def test_a_failure_in_its_back_off_is_reused_until_the_back_off_ends() -> None:
    clock = Clock()
    a, down = Scripted("a", cache(clock)), Scripted("down", cache(clock))
    down.failing = True
    treasury = Treasury([a, down])
    first = await treasury.gather()
    assert first.sources[1].status == "unavailable"
    assert first.max_age_seconds == 0
    clock.now += BACKOFF_SECONDS - 0.5
    held = await reused(treasury, [a, down])
    assert held is not None
    assert held.max_age_seconds == 0
    assert down.loads == 1
    clock.now += 0.5  # the back-off ends: the next read loads again
    assert treasury.unchanged(("a", "down")) is None
    await treasury.gather()
    assert down.loads == 2


async def test_a_notice_boundary_ends_it() -> None:
    clock = Clock()
    wall = Wall(EXPIRES_AT - CONSENT_EXPIRY_NOTICE - timedelta(seconds=1))
    bank = Scripted("finqware:bank", cache(clock), notices_of=consent("bank"))
    treasury = Treasury([bank], clock=wall)
    quiet = await treasury.gather()
    assert notices(quiet) == []
    wall.now += timedelta(milliseconds=999)
    assert await reused(treasury, [bank]) is not None
    wall.now = EXPIRES_AT - CONSENT_EXPIRY_NOTICE  # the notice begins
    assert treasury.unchanged(("finqware:bank",)) is None
    expiring = await treasury.gather()
    assert [n.code for n in notices(expiring)] == ["consent_expiring"]
    assert "expires at" in notices(expiring)[0].message
    wall.now = EXPIRES_AT - timedelta(microseconds=1)
    assert await reused(treasury, [bank]) is not None
    wall.now = EXPIRES_AT  # "expires" becomes "expired"
    assert treasury.unchanged(("finqware:bank",)) is None
    expired = await treasury.gather()
    assert "expired at" in notices(expired)[0].message
    wall.now += timedelta(days=400)
    assert await reused(treasury, [bank]) is not None  # nothing changes any more


@pytest.mark.parametrize("expires_at", [None, EXPIRES_AT])
def test_notices_say_the_same_until_the_instant_they_say_they_may_change(
    expires_at: datetime | None,
) -> None:
    bank = consent("bank", expires_at)
    start = EXPIRES_AT - CONSENT_EXPIRY_NOTICE - timedelta(days=1)
    for step in range(48 * 16):
        now = start + timedelta(hours=step)
        until = bank.notices_until(now)
        if until is None:
            assert bank.notices(now) == bank.notices(now + timedelta(days=3650))
            continue
        assert until > now
        assert bank.notices(until - timedelta(microseconds=1)) == bank.notices(now)
        assert bank.notices(until) != bank.notices(now)


async def test_another_replicas_snapshot_adopted_ends_it() -> None:
    # Two replicas over one shared tier: while b's own entry is fresh it never asks the tier
    # (what it answers is its own); once it adopts a's newer snapshot, its state changes.
    shared = MemoryShared[Interpreted]()
    clock_a, clock_b = Clock(), Clock()
    on_a = Scripted("finsync", cache(clock_a, shared=shared))
    on_b = Scripted("finsync", cache(clock_b, shared=shared, min_refresh_interval_seconds=10))
    replica_a, replica_b = Treasury([on_a]), Treasury([on_b])
    await replica_a.gather()
    first = await replica_b.gather()  # adopted from the tier: the same version as a's
    assert on_b.loads == 0
    assert await reused(replica_b, [on_b]) is not None
    clock_b.now += 20  # past b's refetch floor, still fresh
    await replica_a.gather(refresh=True)  # a loads a new snapshot into the tier
    assert await reused(replica_b, [on_b]) is not None  # b's own entry still answers
    await replica_b.gather(refresh=True)  # b's refetch adopts a's recent snapshot
    assert on_b.loads == 0
    assert replica_b.unchanged(("finsync",)) is None
    adopted = await replica_b.gather()
    assert adopted.state != first.state
    assert adopted.data == (await replica_a.gather()).data
    assert await reused(replica_b, [on_b]) is not None


async def test_a_change_of_another_connections_condition_ends_it() -> None:
    # The moments are the treasury's: any connection's condition moving is conservatively
    # a new data state for every remembered gather.
    clock = Clock()
    a, b = Scripted("a", cache(clock)), Scripted("b", cache(clock))
    treasury = Treasury([a, b])
    await treasury.gather(connections=[a])
    assert await reused(treasury, [a]) is not None
    b.failing = True
    await treasury.gather(connections=[a, b])  # b's first sight: its condition is new
    assert treasury.unchanged(("a",)) is None
    await treasury.gather(connections=[a])
    assert await reused(treasury, [a]) is not None


async def test_what_no_longer_stands_does_not_hold_a_replaced_snapshot() -> None:
    clock = Clock()
    shared_cache = cache(clock)
    a, b = Scripted("a", shared_cache), Scripted("b", shared_cache)
    treasury = Treasury([a, b])
    await treasury.gather(connections=[a])  # remembered for ("a",) alone
    held = a.last()
    assert held is not None
    first = weakref.ref(held.value.warnings[0])
    del held
    a.invalidate()
    await treasury.gather(connections=[a, b])  # a reloads; ("a",) is not gathered again
    for thread in threading.enumerate():
        if thread.name == "tesoro-let-go":
            thread.join()  # the cache lets the replaced snapshot go in a thread of its own
    gc.collect()
    assert first() is None
