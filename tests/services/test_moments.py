"""A connection's moment: the latest of its data's fetch and its last change of condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.domain.models import SourceStatus
from app.services.moments import Moments

FETCHED = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def test_a_moment_is_the_fetch_until_the_condition_changes_then_when_it_changed() -> None:
    now = [FETCHED + timedelta(minutes=5)]
    moments = Moments(lambda: now[0])
    ok = (SourceStatus.ok, None)
    stale = (SourceStatus.stale, None)
    assert moments.started == now[0]
    # First seen with data: its condition began with that data.
    assert moments.of("finsync", ok, FETCHED) == FETCHED
    now[0] += timedelta(minutes=1)
    assert moments.of("finsync", ok, FETCHED) == FETCHED  # the clock alone moves nothing
    changed_at = now[0]
    assert moments.of("finsync", stale, FETCHED) == changed_at
    now[0] += timedelta(minutes=1)
    assert moments.of("finsync", stale, FETCHED) == changed_at
    # New data, fetched after the change: its fetch is the latest.
    refetched = now[0]
    assert moments.of("finsync", stale, refetched) == refetched
    # Each connection its own.
    assert moments.of("finqware:bt-main", ok, FETCHED) == FETCHED


def test_a_condition_found_in_place_without_data_says_no_moment_until_it_changes() -> None:
    now = [FETCHED]
    moments = Moments(lambda: now[0])
    unavailable = (SourceStatus.unavailable, ("timeout", "slow"))
    # Found so (a replica starting): nothing says when it began, so it says nothing, and
    # every replica that finds it so agrees.
    assert moments.of("finsync", unavailable, None) is None
    now[0] += timedelta(seconds=3)
    assert moments.of("finsync", unavailable, None) is None
    # A change seen happen began when it was seen.
    other = (SourceStatus.unavailable, ("upstream_error", "500"))
    assert moments.of("finsync", other, None) == FETCHED + timedelta(seconds=3)
