"""Aggregated answers are built once per data state and question, and stay byte-for-byte the
JSON their response models define."""

from __future__ import annotations

import asyncio
import time

import pytest
from starlette.testclient import TestClient

from app.api.answers import AnswerCache, Question
from app.domain.models import CounterpartyPage, PositionsResponse, ResponseWarning
from tests.support.apps import MakeClient
from tests.support.simulators import Simulators


def kept(client: TestClient) -> AnswerCache:
    answers: AnswerCache = client.app_state["services"].answers
    return answers


@pytest.mark.parametrize(
    "path",
    [
        "/positions",
        "/positions?currency=ars&meaning=payable&meaning=receivable&page_size=3&page=2",
        "/positions?counterparty_id=finqware:ing-ops&include_zero=true",
        "/positions?kind=external",
    ],
)
def test_positions_are_exactly_the_models_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    plain = PositionsResponse.model_validate_json(response.content).model_dump_json()
    assert response.content == plain.encode()


@pytest.mark.parametrize(
    "path",
    [
        "/counterparties",
        "/counterparties?q=cafe&currency=ars",
        "/counterparties?page=3&page_size=4",
    ],
)
def test_counterparty_pages_are_exactly_the_models_json(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    plain = CounterpartyPage.model_validate_json(response.content).model_dump_json()
    assert response.content == plain.encode()


def test_one_question_about_one_data_state_is_built_once(client: TestClient) -> None:
    first = client.get("/positions?currency=USD")
    again = client.get("/positions?currency=usd")  # the same question, written otherwise
    other = client.get("/positions?currency=ARS")
    assert kept(client).builds == 2
    assert first.headers["etag"] == again.headers["etag"] != other.headers["etag"]
    # Only the volatile members differ: the sources' age and the answer's time.
    assert first.json()["positions"] == again.json()["positions"]


def test_a_matching_etag_is_a_304_that_builds_nothing(make_client: MakeClient) -> None:
    first = make_client()
    etag = first.get("/counterparties?q=banca").headers["etag"]
    assert etag.startswith('W/"')
    # A second instance that loads the same data state has never built this answer: the
    # validator alone decides the 304.
    fresh = make_client()
    answer = fresh.get("/counterparties?q=banca", headers={"If-None-Match": etag})
    assert answer.status_code == 304
    assert answer.content == b""
    assert kept(fresh).builds == 0


def test_new_data_gets_a_new_etag_and_a_new_build(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(min_refresh_interval_seconds=0)
    before = client.get("/positions?source=finsync")
    after = client.get("/positions?source=finsync", headers={"Cache-Control": "no-cache"})
    assert simulators.finsync_calls() == 2
    assert before.headers["etag"] != after.headers["etag"]
    assert kept(client).builds == 2


def test_past_the_ttl_the_answer_is_served_stale_at_once_and_refreshed_behind_it(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(finsync_ttl_seconds=0.05)
    client.get("/positions?source=finsync")
    time.sleep(0.1)
    # FinSync is slow now (0.3 s): the answer is the last data, served without waiting.
    simulators.finsync_faults.delay_seconds = 0.3
    stale = client.get("/positions?source=finsync").json()
    [source] = stale["sources"]
    assert (source["status"], source["error"]) == ("stale", None)
    # Had it waited for the reload, the answer would say ok: stale is the proof.
    for _ in range(200):  # the refresh behind it lands; a bounded wait, not a time limit
        [source] = client.get("/positions?source=finsync").json()["sources"]
        if source["status"] == "ok":
            break
        time.sleep(0.01)
    assert source["status"] == "ok"
    assert simulators.finsync_calls() >= 2


def test_a_shared_value_is_kept_for_the_latest_state_of_its_connections_only() -> None:
    answers = AnswerCache()
    built: list[str] = []

    def build(label: str) -> str:
        built.append(label)
        return label

    old, new = (("finsync", 1, "ok"),), (("finsync", 2, "ok"),)
    bank = (("finqware:bt-main", 7, "ok"),)
    assert answers.shared("positions", old, lambda: build("old")) == "old"
    assert answers.shared("positions", old, lambda: build("again")) == "old"
    assert answers.shared("positions", bank, lambda: build("bank")) == "bank"
    assert answers.shared("positions", new, lambda: build("new")) == "new"
    # The old state's value was let go (it holds a replaced snapshot); the bank's was not.
    assert answers.shared("positions", old, lambda: build("old again")) == "old again"
    assert answers.shared("positions", bank, lambda: build("bank again")) == "bank"
    assert built == ["old", "bank", "new", "old again"]


def test_kept_answers_are_bounded_by_their_bytes() -> None:
    answers = AnswerCache(max_bytes=14_000)
    page = CounterpartyPage(
        items=[],
        page=1,
        page_size=1,
        total=0,
        sources=[],
        complete=True,
        warnings=[ResponseWarning(code="x", message="m" * 3000, source="finsync")],
    )

    async def ask(n: int) -> None:
        await answers.get(Question("counterparties", n, generated_at=False), (), lambda: page)

    async def scenario() -> None:
        for n in (1, 2, 1):
            await ask(n)
        assert answers.builds == 2  # both fit (about 3 KB each, counted twice)
        for n in (3, 4, 1):
            await ask(n)

    asyncio.run(scenario())
    assert answers.builds == 5  # 1 was pushed out by 3 and 4, and built again
