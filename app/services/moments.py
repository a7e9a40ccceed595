"""When each connection's data state came to be: what an answer's `generated_at` says.

A connection's data state is its data (a load), its status and its error. Its moment is the
latest of when its data was fetched (`fetched_at`) and when its condition (status, error, the
notices of the day) last changed while this process watched it. A condition it found already
in place (at start, or a connection's first answer) counts from its data's `fetched_at`, or not
at all when it has no data: replicas that share the same data (through Redis) then say the
same moment, so the same data gives the same bytes across the fleet. The moment is part of
the data state, so an answer built for a state always says the same `generated_at`: nothing
in a body counts time.
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
        self._held: dict[str, tuple[Hashable, datetime | None]] = {}
        # What an answer that depends on no connection says: its (empty) state began with
        # the process.
        self.started = clock()
        # Counts every change of what `of` remembers: an answer gathered before it stands
        # only while it does (`Treasury.unchanged`).
        self.changes = 0

    def of(self, key: str, condition: Hashable, fetched_at: datetime | None) -> datetime | None:
        """The moment connection `key`'s data state came to be, seen now in `condition`
        with data fetched at `fetched_at` (None: no data); None when nothing says it."""
        held = self._held.get(key)
        if held is not None and held[0] == condition:
            since = held[1]
        else:
            # Found in place: it began, as far as anyone can tell, with its data. A change
            # seen happen began when it was seen.
            since = None if held is None else self._clock()
            self._held[key] = (condition, since)
            self.changes += 1
        moments = [moment for moment in (since, fetched_at) if moment is not None]
        return max(moments) if moments else None
