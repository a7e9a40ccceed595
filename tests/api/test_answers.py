"""Aggregated answers: the same data gives the same bytes (and ETag), built and compressed once
per data state and question, byte-for-byte the JSON their response models define; after a
reload, the previous answer serves while the next one builds, when its bytes are still true."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import Callable
from datetime import datetime

import pytest
import zstandard
from pydantic import BaseModel
from starlette.testclient import TestClient

from app.api.answers import AnswerCache, Question, key_of
from app.domain.models import (
    CounterpartyPage,
    PositionsResponse,
    RatesResponse,
    ResponseWarning,
)
from app.services.treasury import Treasury
from tests.api.test_compression import raw
from tests.support.apps import MakeClient
from tests.support.simulators import Simulators


def kept(client: TestClient) -> AnswerCache:
    answers: AnswerCache = client.app_state["services"].answers
    return answers


def treasury(client: TestClient) -> Treasury:
    found: Treasury = client.app_state["services"].treasury
    return found


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/positions", PositionsResponse),
        ("/positions?currency=ars&meaning=payable&meaning=receivable&page_size=3&page=2", None),
        ("/positions?counterparty_id=finqware:ing-ops&include_zero=true", None),
        ("/positions?kind=external", None),
        ("/positions?report_currency=USD", None),
        ("/counterparties", CounterpartyPage),
        ("/counterparties?q=cafe&currency=ars", CounterpartyPage),
        ("/counterparties?page=3&page_size=4", CounterpartyPage),
        ("/rates?currency=ARS&currency=RON&to=USD", RatesResponse),
    ],
)
def test_answers_are_exactly_their_models_json(
    client: TestClient, path: str, model: type[BaseModel] | None
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    plain = (model or PositionsResponse).model_validate_json(response.content).model_dump_json()
    assert response.content == plain.encode()


def test_same_data_gives_the_same_bytes_and_etag_across_requests_and_time(
    client: TestClient,
) -> None:
    first = client.get("/positions?currency=USD")
    time.sleep(1.1)  # past a whole second: nothing in the body counts time
    again = client.get("/positions?currency=usd")  # the same question, written otherwise
    other = client.get("/positions?currency=ARS")
    assert first.content == again.content
    assert first.headers["etag"] == again.headers["etag"] != other.headers["etag"]
    assert kept(client).builds == 2
    body = first.json()
    assert all(
        set(source) == {"source", "status", "fetched_at", "error"} for source in body["sources"]
    )
    # When the data state came to be: no earlier than the latest data it shows (a bank
    # connection of the sandbox is unavailable: that status began when it was first seen).
    fetched = [moment(s["fetched_at"]) for s in body["sources"] if s["fetched_at"] is not None]
    assert moment(body["generated_at"]) >= max(fetched)


def test_a_counterparty_page_is_the_same_bytes_until_the_data_changes(
    make_client: MakeClient,
) -> None:
    client = make_client(min_refresh_interval_seconds=0)
    first = client.get("/counterparties?page_size=5")
    assert client.get("/counterparties?page_size=5").content == first.content
    changed = client.get("/counterparties?page_size=5", headers={"Cache-Control": "no-cache"})
    assert changed.content != first.content
    assert changed.headers["etag"] != first.headers["etag"]


def test_a_matching_etag_is_a_304_that_builds_nothing(client: TestClient) -> None:
    etag = client.get("/counterparties?q=banca").headers["etag"]
    assert etag.startswith('W/"')
    for validator in (etag, f'"other", {etag}', "*"):
        answer = client.get("/counterparties?q=banca", headers={"If-None-Match": validator})
        assert answer.status_code == 304
        assert answer.content == b""
        assert answer.headers["etag"] == etag
    assert kept(client).builds == 1


def test_new_data_gets_new_bytes_a_new_etag_and_a_new_build(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(min_refresh_interval_seconds=0)
    before = client.get("/positions?source=finsync")
    after = client.get("/positions?source=finsync", headers={"Cache-Control": "no-cache"})
    assert simulators.finsync_calls() == 2
    assert before.headers["etag"] != after.headers["etag"]
    assert before.content != after.content
    assert kept(client).builds == 2
    [source] = after.json()["sources"]
    # The refetch was asked for: never the previous answer, always the new data's.
    assert source["status"] == "ok"
    assert after.json()["generated_at"] == source["fetched_at"]
    assert moment(source["fetched_at"]) > moment(before.json()["sources"][0]["fetched_at"])


def decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    return zstandard.ZstdDecompressor().decompressobj().decompress(body)


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_each_encoding_is_compressed_once_and_decompresses_to_the_identity_body(
    client: TestClient, encoding: str
) -> None:
    plain = client.get("/positions", headers={"Accept-Encoding": "identity"})
    first_headers, first = raw(client, "/positions", encoding)
    second_headers, second = raw(client, "/positions", encoding)
    assert first_headers["content-encoding"] == second_headers["content-encoding"] == encoding
    assert first == second
    assert decode(first, encoding) == plain.content
    assert first_headers["etag"] == second_headers["etag"] == plain.headers["etag"]
    assert "Accept-Encoding" in first_headers["vary"]
    assert kept(client).builds == 1


def test_generated_at_moves_with_a_status_change_and_not_with_the_clock(
    make_client: MakeClient, simulators: Simulators
) -> None:
    client = make_client(finsync_ttl_seconds=0.05)
    fresh = client.get("/positions?source=finsync").json()
    time.sleep(0.1)
    # FinSync is slow now: the last data is served stale at once, a refresh runs behind it.
    simulators.finsync_faults.delay_seconds = 0.5
    stale = client.get("/positions?source=finsync")
    again = client.get("/positions?source=finsync")
    [source] = stale.json()["sources"]
    assert (source["status"], source["error"]) == ("stale", None)
    assert source["fetched_at"] == fresh["sources"][0]["fetched_at"]
    # The status change made a new data state, later than the data it shows.
    assert moment(stale.json()["generated_at"]) > moment(source["fetched_at"])
    assert again.content == stale.content


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
    # Never the previous answer's `ok`: it is past its TTL now.
    assert (source["status"], source["error"]) == ("stale", None)
    for _ in range(200):  # the refresh behind it lands; a bounded wait, not a time limit
        [source] = client.get("/positions?source=finsync").json()["sources"]
        if source["status"] == "ok":
            break
        time.sleep(0.01)
    assert source["status"] == "ok"
    assert simulators.finsync_calls() >= 2


def wait_for(check: Callable[[], bool]) -> None:
    for _ in range(500):  # bounded: 5 s at most
        if check():
            return
        time.sleep(0.01)
    raise AssertionError("not reached")


@pytest.mark.parametrize(
    "path",
    [
        "/positions?source=finsync&page_size=7",
        "/counterparties?source=finsync&page_size=7",
        # The new data's currencies (which rates it needs) are worked out behind it too.
        "/positions?source=finsync&page_size=7&report_currency=USD",
    ],
)
def test_after_a_reload_the_stale_answer_serves_while_the_next_one_builds(
    make_client: MakeClient, simulators: Simulators, path: str
) -> None:
    # Long enough that the reloaded data is still fresh when the new answer is asked for.
    client = make_client(finsync_ttl_seconds=3)
    client.get(path)
    time.sleep(3.1)
    simulators.finsync_faults.delay_seconds = 0.2
    stale = client.get(path)
    source = stale.json()["sources"][0]
    assert (source["source"], source["status"]) == ("finsync", "stale")
    finsync = treasury(client).connection("finsync")
    assert finsync is not None
    held = finsync.last()
    assert held is not None
    wait_for(lambda: (last := finsync.last()) is not None and last.version != held.version)
    builds = kept(client).builds
    # The data reloaded and the new answer is not built yet: the stale one is sent at once,
    # saying what it is (stale, fetched then), with its own ETag, not to be kept by the caller.
    served = client.get(path)
    assert served.content == stale.content
    assert served.headers["etag"] == stale.headers["etag"]
    assert served.headers["cache-control"] == "private, max-age=0"
    wait_for(lambda: kept(client).builds == builds + 1)
    fresh = client.get(path)
    source = fresh.json()["sources"][0]
    assert (source["source"], source["status"]) == ("finsync", "ok")
    assert fresh.headers["etag"] != stale.headers["etag"]
    assert kept(client).builds == builds + 1  # built once, behind the answer served


def test_a_value_per_state_is_kept_for_the_latest_state_of_its_connections_only() -> None:
    answers = AnswerCache()
    built: list[str] = []

    def build(label: str) -> str:
        built.append(label)
        return label

    old, new = (("finsync", 1, "ok"),), (("finsync", 2, "ok"),)
    bank = (("finqware:bt-main", 7, "ok"),)
    assert answers.per_state("positions", old, lambda: build("old")) == "old"
    assert answers.per_state("positions", old, lambda: build("again")) == "old"
    assert answers.per_state("positions", bank, lambda: build("bank")) == "bank"
    assert answers.per_state("positions", new, lambda: build("new")) == "new"
    # The old state's value was let go (it holds a replaced snapshot); the bank's was not.
    assert answers.per_state("positions", old, lambda: build("old again")) == "old again"
    assert answers.per_state("positions", bank, lambda: build("bank again")) == "bank"
    assert built == ["old", "bank", "new", "old again"]


def page(message: str = "m" * 3000) -> CounterpartyPage:
    return CounterpartyPage(
        items=[],
        page=1,
        page_size=1,
        total=0,
        sources=[],
        complete=True,
        warnings=[ResponseWarning(code="x", message=message, source="finsync")],
    )


def test_kept_answers_are_bounded_by_their_bytes() -> None:
    answers = AnswerCache(max_bytes=14_000)

    async def ask(n: int) -> None:
        await answers.get(Question("counterparties", n), (), page)

    async def scenario() -> None:
        for n in (1, 2, 1):
            await ask(n)
        assert answers.builds == 2  # both fit (about 3 KB each, counted twice)
        for n in (3, 4, 1):
            await ask(n)

    asyncio.run(scenario())
    assert answers.builds == 5  # 1 was pushed out by 3 and 4, and built again


@pytest.mark.anyio
async def test_a_kept_answer_is_found_by_its_key_and_the_question_keeps_its_latest() -> None:
    answers = AnswerCache()
    question = Question("counterparties", ("q", 1))
    old, new = (("finsync", 1),), (("finsync", 2),)
    assert answers.kept(key_of(question, old)) is None
    assert answers.previous(question) is None
    first = await answers.get(question, old, lambda: page("old"))
    assert answers.kept(key_of(question, old)) is first
    assert first.state == old
    assert CounterpartyPage.model_validate_json(first.body) == page("old")
    second = await answers.get(question, new, lambda: page("new"))
    assert answers.previous(question) is second
    assert answers.kept(key_of(question, old)) is first  # still kept, by its own key
    assert first.etag != second.etag
