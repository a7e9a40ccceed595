"""Flights: one call per key for every waiter, its outcome to all, the key freed at its end."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from app.flight import Flights

pytestmark = pytest.mark.anyio


class Call:
    """Counts calls; each waits on `gate`; fails with `failure` when one is set."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()
        self.failure: Exception | None = None

    async def __call__(self) -> str:
        self.calls += 1
        number = self.calls
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return f"result-{number}"


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_callers_of_one_key_share_one_call_and_its_result() -> None:
    flights, call = Flights[str, str](), Call()
    waiters = [asyncio.create_task(flights.run("k", call)) for _ in range(5)]
    await settle()
    assert "k" in flights
    assert len(flights) == 1
    call.gate.set()
    assert await asyncio.gather(*waiters) == ["result-1"] * 5
    assert call.calls == 1


async def test_different_keys_run_side_by_side() -> None:
    flights, call = Flights[str, str](), Call()
    waiters = [asyncio.create_task(flights.run(key, call)) for key in ("a", "b")]
    await settle()
    assert call.calls == 2
    assert len(flights) == 2
    call.gate.set()
    assert sorted(await asyncio.gather(*waiters)) == ["result-1", "result-2"]


async def test_the_exception_of_the_call_goes_to_every_waiter() -> None:
    flights, call = Flights[str, str](), Call()
    call.failure = LookupError("gone")
    waiters = [asyncio.create_task(flights.run("k", call)) for _ in range(3)]
    await settle()
    call.gate.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(outcome is call.failure for outcome in outcomes)
    assert call.calls == 1


async def test_the_key_is_free_once_the_call_ends_so_a_later_caller_starts_anew() -> None:
    flights, call = Flights[str, str](), Call()
    call.gate.set()
    assert await flights.run("k", call) == "result-1"
    assert "k" not in flights
    assert await flights.run("k", call) == "result-2"


async def test_a_failed_call_is_not_remembered() -> None:
    flights, call = Flights[str, str](), Call()
    call.gate.set()
    call.failure = LookupError("once")
    with pytest.raises(LookupError):
        await flights.run("k", call)
    call.failure = None
    assert await flights.run("k", call) == "result-2"


async def test_the_key_is_free_before_any_waiter_resumes() -> None:
    flights, call = Flights[str, str](), Call()
    seen: list[bool] = []

    async def wait_then_look() -> None:
        await flights.run("k", call)
        seen.append("k" in flights)

    waiter = asyncio.create_task(wait_then_look())
    await settle()
    call.gate.set()
    await waiter
    assert seen == [False]


async def test_a_cancelled_waiter_does_not_cancel_the_call_for_the_others() -> None:
    flights, call = Flights[str, str](), Call()
    leaving = asyncio.create_task(flights.run("k", call))
    staying = asyncio.create_task(flights.run("k", call))
    await settle()
    leaving.cancel()
    await settle()
    assert leaving.cancelled()
    call.gate.set()
    assert await staying == "result-1"
    assert call.calls == 1


async def test_without_a_hook_the_call_runs_on_when_every_waiter_has_left() -> None:
    flights, call = Flights[str, str](), Call()
    finished: list[str] = []

    async def recorded() -> str:
        result = await call()
        finished.append(result)
        return result

    leaving = asyncio.create_task(flights.run("k", recorded))
    await settle()
    leaving.cancel()
    await settle()
    # Still under way, and joined by the next caller rather than started again.
    assert "k" in flights
    joining = asyncio.create_task(flights.run("k", recorded))
    await settle()
    call.gate.set()
    assert await joining == "result-1"
    assert finished == ["result-1"]
    assert call.calls == 1


async def test_with_a_hook_the_last_waiter_leaving_abandons_the_call_and_frees_the_key() -> None:
    flights, call = Flights[str, str](), Call()
    abandoned: list[str] = []
    first = asyncio.create_task(flights.run("k", call, on_abandoned=lambda: abandoned.append("k")))
    second = asyncio.create_task(flights.run("k", call))
    await settle()
    first.cancel()
    await settle()
    assert abandoned == []  # one waiter is left
    second.cancel()
    await settle()
    assert abandoned == ["k"]
    assert "k" not in flights
    # The abandoned call was not cancelled by the helper (the hook decides); the next caller
    # starts a new one rather than joining it.
    third = asyncio.create_task(flights.run("k", call))
    await settle()
    assert call.calls == 2
    call.gate.set()
    assert await third == "result-2"


async def test_a_call_cancelled_before_it_ran_frees_its_key() -> None:
    flights, call = Flights[str, str](), Call()
    task = flights.start("k", call)
    task.cancel()  # before its first step: the call's own `finally` never runs
    await settle()
    assert task.cancelled()
    assert "k" not in flights
    assert call.calls == 0


async def test_a_call_ending_normally_never_calls_the_hook() -> None:
    flights, call = Flights[str, str](), Call()
    abandoned: list[str] = []
    call.gate.set()
    assert await flights.run("k", call, on_abandoned=lambda: abandoned.append("k")) == "result-1"
    assert abandoned == []


async def test_start_replaces_the_running_call_whose_waiters_keep_waiting_for_it() -> None:
    flights = Flights[str, str]()
    gates = [asyncio.Event(), asyncio.Event()]

    def gated(number: int) -> Any:
        async def call() -> str:
            await gates[number].wait()
            return f"call-{number}"

        return call

    old = asyncio.create_task(flights.run("k", gated(0)))
    await settle()
    replacement = flights.start("k", gated(1))
    joining = asyncio.create_task(flights.run("k", gated(2)))
    await settle()
    gates[0].set()
    assert await old == "call-0"
    # The old call ending does not free the key of its replacement.
    assert "k" in flights
    gates[1].set()
    assert await joining == "call-1"
    assert replacement.result() == "call-1"
    assert "k" not in flights


async def test_a_failed_call_nobody_waits_for_is_never_logged_as_lost() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        flights, call = Flights[str, str](), Call()
        call.failure = LookupError("nobody listens")
        call.gate.set()
        task = flights.join("k", call)
        assert flights.join("k", call) is task  # joined while under way
        await settle()
        assert task.done()
        assert "k" not in flights
        # Drop every reference to the task (the failure's traceback holds its frames).
        del task
        call.failure = None
        gc.collect()
        await settle()
    finally:
        loop.set_exception_handler(None)
    assert reported == []
