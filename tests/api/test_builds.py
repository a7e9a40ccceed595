"""Building answers is bounded for the process: a few at a time, a bounded queue behind them
(then a 503 problem with Retry-After), queued builds every caller left are dropped, and a
build others still wait for finishes. Pages of one filter share its filtering and totals,
and a long list is serialised in slices to the same bytes."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable
from decimal import Decimal

import httpx2
import pytest
from starlette.testclient import TestClient

from app.api.answers import (
    COMPRESSED_IN_A_PLACE_BYTES,
    AnswerCache,
    BuildLimiter,
    KeptAnswer,
    Question,
    compress,
    key_of,
)
from app.api.errors import BuildsBusyError
from app.domain.models import CounterpartyPage, PositionsResponse
from app.metrics import Metrics
from tests.support.apps import MakeClient, sandbox_app
from tests.support.asgi import started
from tests.support.simulators import Simulators


def page(total: int = 0) -> CounterpartyPage:
    return CounterpartyPage(
        items=[], page=1, page_size=1, total=total, sources=[], complete=True, warnings=[]
    )


class Gate:
    """A build that holds its worker thread until opened, and says when it has started."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.started = threading.Event()
        self.runs = 0

    def build(self, total: int = 0) -> Callable[[], CounterpartyPage]:
        def run() -> CounterpartyPage:
            self.runs += 1
            self.started.set()
            assert self.opened.wait(10)
            return page(total)

        return run


def question(n: int) -> Question:
    return Question("counterparties", n)


async def until(check: Callable[[], bool]) -> None:
    for _ in range(500):  # bounded: 5 s at most
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


@pytest.mark.anyio
async def test_builds_run_a_few_at_a_time_and_the_queue_is_bounded() -> None:
    limiter = BuildLimiter(concurrent=2, queued=1)
    answers = AnswerCache(limiter=limiter)
    gate = Gate()
    asked = [asyncio.create_task(answers.get(question(n), (), gate.build(n))) for n in range(3)]
    await until(lambda: limiter.running == 2 and limiter.waiting == 1)
    # A fourth distinct question: no build place and no queue place.
    with pytest.raises(BuildsBusyError):
        await answers.get(question(99), (), gate.build())
    # A question already being built is joined, never refused.
    joined = asyncio.create_task(answers.get(question(0), (), gate.build()))
    await asyncio.sleep(0.05)
    assert not joined.done()
    assert gate.runs == 2  # the third waits its turn
    gate.opened.set()
    built = await asyncio.gather(*asked, joined)
    assert all(isinstance(one, KeptAnswer) for one in built)
    assert answers.builds == 3
    assert (limiter.running, limiter.waiting) == (0, 0)


@pytest.mark.anyio
async def test_a_queued_build_every_caller_left_gives_its_place_up_and_never_runs() -> None:
    limiter = BuildLimiter(concurrent=1, queued=1)
    answers = AnswerCache(limiter=limiter)
    gate = Gate()
    running = asyncio.create_task(answers.get(question(1), (), gate.build()))
    await until(gate.started.is_set)
    queued = asyncio.create_task(answers.get(question(2), (), gate.build()))
    await until(lambda: limiter.waiting == 1)
    queued.cancel()
    await until(lambda: limiter.waiting == 0)
    # The place is free again: another question queues instead of a 503.
    other = asyncio.create_task(answers.get(question(3), (), gate.build()))
    await until(lambda: limiter.waiting == 1)
    gate.opened.set()
    await asyncio.gather(running, other)
    assert answers.builds == 2  # questions 1 and 3; question 2 was never built
    assert (limiter.running, limiter.waiting) == (0, 0)


@pytest.mark.anyio
async def test_a_build_others_still_wait_for_finishes_when_one_caller_leaves() -> None:
    answers = AnswerCache(limiter=BuildLimiter(concurrent=1, queued=1))
    gate = Gate()
    blocker = asyncio.create_task(answers.get(question(1), (), gate.build()))
    await until(gate.started.is_set)
    leaving = asyncio.create_task(answers.get(question(2), (), gate.build(7)))
    staying = asyncio.create_task(answers.get(question(2), (), gate.build(8)))
    await asyncio.sleep(0.05)
    leaving.cancel()
    gate.opened.set()
    kept = await staying
    await blocker
    assert b'"total":7' in kept.body
    assert answers.builds == 2


@pytest.mark.anyio
async def test_a_running_build_every_caller_left_is_not_kept_and_frees_its_place() -> None:
    limiter = BuildLimiter(concurrent=1, queued=0)
    answers = AnswerCache(limiter=limiter)
    gate = Gate()
    alone = asyncio.create_task(answers.get(question(1), (), gate.build()))
    await until(gate.started.is_set)
    alone.cancel()
    await until(alone.done)  # its caller has left while the build runs
    gate.opened.set()
    await until(lambda: limiter.running == 0)
    # Not kept: asked again, it is built again.
    await answers.get(question(1), (), lambda: page())
    assert answers.builds == 2


@pytest.mark.anyio
async def test_a_full_build_queue_is_a_503_problem_with_retry_after(
    simulators: Simulators,
) -> None:
    app = sandbox_app(
        simulators, max_concurrent_builds=1, max_queued_builds=0, caller_max_in_flight=100
    )
    async with (
        started(app) as running,
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=running), base_url="http://tesoro"
        ) as http,
    ):
        # Every request waits for the same slow load, then all need a build at once.
        simulators.finsync_faults.delay_seconds = 0.3
        answers = await asyncio.gather(
            *(http.get(f"/positions?page_size={size}") for size in range(1, 21))
        )
        metrics = (await http.get("/metrics")).text
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) == {200, 503}
    busy = next(answer for answer in answers if answer.status_code == 503)
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.headers["retry-after"] == "2"
    assert busy.json()["type"] == "/problems/busy"
    refused = statuses.count(503)
    assert f'tesoro_requests_rejected_total{{reason="builds_queue_full"}} {refused}.0' in metrics


def test_a_page_past_the_end_is_empty_with_the_totals_of_every_match(
    client: TestClient,
) -> None:
    first = client.get("/positions?page_size=2").json()
    past = client.get("/positions?page_size=2&page=501").json()
    assert past["positions"] == []
    assert first["total"] > 2
    assert (past["total"], past["totals"]) == (first["total"], first["totals"])


def test_pages_of_one_filter_share_its_filtering_and_totals() -> None:
    answers = AnswerCache()
    made: list[str] = []

    def make(label: str) -> str:
        made.append(label)
        return label

    old, new = (("finsync", 1, "ok"),), (("finsync", 2, "ok"),)
    assert answers.derived("positions", old, ("ARS",), lambda: make("ars")) == "ars"
    assert answers.derived("positions", old, ("ARS",), lambda: make("again")) == "ars"
    assert answers.derived("positions", old, ("USD",), lambda: make("usd")) == "usd"
    # New data: what the old state derived is let go with it.
    assert answers.derived("positions", new, ("ARS",), lambda: make("ars new")) == "ars new"
    assert answers.derived("positions", old, ("USD",), lambda: make("usd old")) == "usd old"
    assert made == ["ars", "usd", "ars new", "usd old"]


def test_a_long_list_is_serialised_in_slices_to_the_models_exact_json(
    make_client: MakeClient,
) -> None:
    body = make_client().get("/positions?include_zero=true").json()
    one = body["positions"][0]
    many = [
        {**one, "account_id": f"finsync:{n}", "amount": str(Decimal(n) / 100)}
        for n in range(1, 1235)
    ]
    model = PositionsResponse.model_validate({**body, "positions": many})

    async def kept() -> KeptAnswer:
        return await AnswerCache().get(Question("positions", "long"), (), lambda: model)

    assert asyncio.run(kept()).body == model.model_dump_json().encode()


@pytest.mark.anyio
async def test_builds_running_and_queued_are_gauges() -> None:
    metrics = Metrics()
    limiter = BuildLimiter(concurrent=1, queued=2, observe=metrics.observe_builds)
    answers = AnswerCache(limiter=limiter)
    gate = Gate()
    asked = [asyncio.create_task(answers.get(question(n), (), gate.build())) for n in range(3)]
    await until(lambda: limiter.waiting == 2)

    def gauges() -> tuple[float | None, float | None]:
        return (
            metrics.registry.get_sample_value("tesoro_answer_builds_in_flight"),
            metrics.registry.get_sample_value("tesoro_answer_builds_queued"),
        )

    assert gauges() == (1, 2)
    gate.opened.set()
    await asyncio.gather(*asked)
    assert gauges() == (0, 0)


def answer(body: bytes) -> KeptAnswer:
    return KeptAnswer(("counterparties", (), len(body)), body, 'W/"x"')


@pytest.mark.anyio
async def test_compressing_a_large_answer_takes_a_build_place() -> None:
    limiter = BuildLimiter(concurrent=1, queued=0)
    answers = AnswerCache(limiter=limiter)
    large = answer(b'{"x":"' + b"a" * (COMPRESSED_IN_A_PLACE_BYTES + 1) + b'"}')
    small = answer(b'{"x":"' + b"a" * 2000 + b'"}')
    gate = Gate()
    blocker = asyncio.create_task(answers.get(question(1), (), gate.build()))
    await until(gate.started.is_set)
    with pytest.raises(BuildsBusyError):
        await answers.encoded(large, "gzip")
    assert "gzip" not in large.encoded
    # A small one costs next to nothing: it needs no place.
    assert gzip.decompress(await answers.encoded(small, "gzip")) == small.body
    gate.opened.set()
    await blocker
    # The refusal was not kept: asked again with a place free, it is compressed, and kept.
    compressed = await answers.encoded(large, "gzip")
    assert gzip.decompress(compressed) == large.body
    assert large.encoded["gzip"] is compressed
    assert await answers.encoded(large, "gzip") is compressed
    assert (limiter.running, limiter.waiting) == (0, 0)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_the_same_body_always_compresses_to_the_same_bytes(encoding: str) -> None:
    body = b'{"items":[' + b",".join(b'{"n":%d}' % n for n in range(3000)) + b"]}"
    assert compress(body, encoding) == compress(body, encoding)


@pytest.mark.anyio
async def test_a_build_behind_an_answer_served_is_kept_though_nobody_waits_for_it() -> None:
    answers = AnswerCache(limiter=BuildLimiter(concurrent=1, queued=0))
    gate = Gate()
    answers.build_behind(question(1), (), gate.build(3))
    await until(gate.started.is_set)
    # Every place is taken: another build behind is simply not started (no 503 for it).
    answers.build_behind(question(2), (), gate.build(4))
    gate.opened.set()
    await until(lambda: answers.kept(key_of(question(1), ())) is not None)
    built = answers.kept(key_of(question(1), ()))
    assert built is not None
    assert b'"total":3' in built.body
    assert answers.kept(key_of(question(2), ())) is None
    assert answers.builds == 1
    # Asked again while kept: nothing more is built.
    answers.build_behind(question(1), (), gate.build(5))
    assert (await answers.get(question(1), (), gate.build(6))) is built
    assert answers.builds == 1


@pytest.mark.anyio
async def test_asking_again_while_a_left_build_still_runs_builds_it_anew() -> None:
    limiter = BuildLimiter(concurrent=2, queued=0)
    answers = AnswerCache(limiter=limiter)
    gate = Gate()
    left = asyncio.create_task(answers.get(question(1), (), gate.build(5)))
    await until(gate.started.is_set)
    left.cancel()
    await until(left.done)
    # The same question again, while the left build still holds its thread and its place.
    again = asyncio.create_task(answers.get(question(1), (), lambda: page(6)))
    kept = await again
    assert b'"total":6' in kept.body
    gate.opened.set()
    await until(lambda: limiter.running == 0)
    assert answers.builds == 2
