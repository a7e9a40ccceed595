"""When each connection's data state came to be: what an answer's `generated_at` says.

A connection's data state is its data (a load), its status and its error. Its moment is the
latest of when its data was fetched (`fetched_at`) and when its condition (status, error, the
notices of the day) last changed, as this process saw it. The moment is part of the data
state, so an answer built for a state always says the same `generated_at`: nothing in a body
counts time.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


class Moments:
    """Remembers, per connection, its condition and when it began."""

    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._held: dict[str, tuple[Hashable, datetime]] = {}
        # What an answer that depends on no connection says: its (empty) state began with
        # the process.
        self.started = clock()

    def of(self, key: str, condition: Hashable, fetched_at: datetime | None) -> datetime:
        """The moment connection `key`'s data state came to be, seen now in `condition`
        with data fetched at `fetched_at` (None: no data)."""
        held = self._held.get(key)
        if held is not None and held[0] == condition:
            since = held[1]
        else:
            # First seen with data: as far as this process knows, its condition began with
            # that data. A change seen later began when it was seen.
            since = fetched_at if held is None and fetched_at is not None else self._clock()
            self._held[key] = (condition, since)
        return since if fetched_at is None else max(since, fetched_at)
