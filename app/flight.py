"""One call for all waiters: `Flights` runs at most one call per key and hands its outcome to
every caller that asked for that key meanwhile.

The first caller of a key starts the call as its own task; later callers wait for that task.
Its result, or its exception, goes to every waiter. A waiter that goes away (cancelled) does
not cancel the call for the others; by default the call runs on even when every waiter has
left (a load whose value the next caller will want), unless its starter gave an
`on_abandoned` hook, which then decides (a build nobody waits for may give its place up).
The key is free again as soon as the call ends, so the next caller starts a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(eq=False)
class _Flight(Generic[T]):
    task: asyncio.Task[T]
    on_abandoned: Callable[[], None] | None
    waiters: int = 0


class Flights(Generic[K, T]):
    """The calls under way, one per key."""

    def __init__(self) -> None:
        self._flights: dict[K, _Flight[T]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._flights

    def __len__(self) -> int:
        return len(self._flights)

    def start(
        self,
        key: K,
        call: Callable[[], Awaitable[T]],
        *,
        on_abandoned: Callable[[], None] | None = None,
    ) -> asyncio.Task[T]:
        """A new call for `key`, the one every later caller of `key` waits for. A call still
        running for `key` is replaced, not stopped: whoever waits for it keeps waiting for it.

        `on_abandoned`, if given, is called when the last caller waiting through `run` goes
        away before the call ends; the key is freed at that moment, so the next caller starts a
        new call rather than joining one nobody wanted."""
        task = asyncio.get_running_loop().create_task(self._run(key, call))
        # Every caller may have gone away: read the outcome so asyncio never logs it as lost.
        # The key is freed here too for a task cancelled before it ever ran (its `finally`
        # never runs then).
        task.add_done_callback(lambda done: self._ended(key, done))
        self._flights[key] = _Flight(task, on_abandoned)
        return task

    def join(self, key: K, call: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The call under way for `key`, or a new one: a task to wait for, or to leave running
        (a refresh behind an answer already given)."""
        flight = self._flights.get(key)
        return self.start(key, call) if flight is None else flight.task

    async def run(
        self,
        key: K,
        call: Callable[[], Awaitable[T]],
        *,
        on_abandoned: Callable[[], None] | None = None,
    ) -> T:
        """The outcome of the call under way for `key`, or of a new one (`on_abandoned` is
        the new one's hook, see `start`)."""
        flight = self._flights.get(key)
        if flight is None:
            self.start(key, call, on_abandoned=on_abandoned)
            flight = self._flights[key]
        flight.waiters += 1
        try:
            # Shielded: a caller that goes away does not cancel the call the others wait for.
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done() and flight.on_abandoned is not None:
                self._free(key, flight.task)
                flight.on_abandoned()

    async def _run(self, key: K, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        finally:
            # Freed as the call ends, before any waiter resumes: a caller arriving after the
            # end starts anew rather than reading an outcome already given.
            task = asyncio.current_task()
            if task is not None:
                self._free(key, task)

    def _free(self, key: K, task: asyncio.Task[T]) -> None:
        flight = self._flights.get(key)
        if flight is not None and flight.task is task:
            del self._flights[key]

    def _ended(self, key: K, task: asyncio.Task[T]) -> None:
        self._free(key, task)
        if not task.cancelled():
            task.exception()
