"""FinSync's client list read while it moves: every page checked against page 1, a bounded
re-read when they disagree, and `inconsistent_read` when they never agree (a fake FinSync at
the transport whose list tests change between pages)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import httpx2
import pytest
from pydantic import SecretStr

from app.upstreams.errors import UpstreamBadResponseError, UpstreamInconsistentReadError
from app.upstreams.finsync import (
    READ_ATTEMPTS,
    FinsyncClient,
    FinsyncClientRecord,
    _read_ids_page,
    _read_page,
)
from app.upstreams.reading import Parsed

pytestmark = pytest.mark.anyio

API_KEY = "test-finsync-key"


class MovingFinsync:
    """A fake FinSync listing `ids` in order, pages of the size asked; `after_page` runs
    after each page is served (with the page number), so a test can change the list
    between two pages of one read."""

    def __init__(
        self,
        ids: list[int],
        *,
        after_page: Callable[[MovingFinsync, int], None] | None = None,
        ignore_page: bool = False,
        echo_page: bool = True,
    ) -> None:
        self.ids = ids
        self.after_page = after_page
        self.ignore_page = ignore_page
        self.echo_page = echo_page
        self.asked: list[int] = []
        # Set by a test: the first client of page 1 is served with an unreadable id.
        self.unreadable_first = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.headers["x-api-key"] == API_KEY
        asked = int(request.url.params["page"])
        size = int(request.url.params["pageSize"])
        self.asked.append(asked)
        served = 1 if self.ignore_page else asked
        chunk = self.ids[(served - 1) * size : served * size]
        pagination: dict[str, int] = {
            "pageSize": size,
            "total": len(self.ids),
            "totalPages": -(-len(self.ids) // size),
        }
        if self.echo_page:
            pagination["page"] = served
        data = [_client(client_id) for client_id in chunk]
        if served == 1 and self.unreadable_first and data:
            data[0]["id"] = "unreadable"
        body = {
            "data": data,
            "pagination": pagination,
        }
        response = httpx2.Response(200, content=json.dumps(body))
        if self.after_page is not None:
            self.after_page(self, asked)
        return response


def _client(client_id: int) -> dict[str, object]:
    return {
        "id": client_id,
        "name": f"Client {client_id}",
        "type": 0,
        "accounts": [{"id": client_id * 10, "currency_name": "ARS", "balance": f"{client_id}.00"}],
    }


def make(fake: MovingFinsync, *, read_attempts: int = READ_ATTEMPTS) -> FinsyncClient:
    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(fake), base_url="https://finsync.test/"
    )
    return FinsyncClient(
        http, api_key=SecretStr(API_KEY), page_concurrency=2, read_attempts=read_attempts
    )


def once(change: Callable[[MovingFinsync], None]) -> Callable[[MovingFinsync, int], None]:
    """A change made right after the first page 1 served, and never again."""
    done = False

    def after(fake: MovingFinsync, page: int) -> None:
        nonlocal done
        if page == 1 and not done:
            done = True
            change(fake)

    return after


def every_read(change: Callable[[MovingFinsync], None]) -> Callable[[MovingFinsync, int], None]:
    """A change made right after every page 1 served: each read sees the list move."""

    def after(fake: MovingFinsync, page: int) -> None:
        if page == 1:
            change(fake)

    return after


def delete_first(fake: MovingFinsync) -> None:
    del fake.ids[0]


def create_at_front(fake: MovingFinsync) -> None:
    fake.ids.insert(0, min(fake.ids) - 1)


def grow_a_page(fake: MovingFinsync) -> None:
    top = max(fake.ids)
    fake.ids.extend(range(top + 1, top + 101))


def delete_first_and_create_at_end(fake: MovingFinsync) -> None:
    # The total stays: only page 1 read again at the end sees it.
    del fake.ids[0]
    fake.ids.append(max(fake.ids) + 1)


async def ids_read(fake: MovingFinsync) -> list[int]:
    return [client.id for client in await make(fake).list_clients()]


# ------------------------------------------------------------------- a move once: read again


@pytest.mark.parametrize(
    "change",
    [delete_first, create_at_front, grow_a_page, delete_first_and_create_at_end],
    ids=lambda change: change.__name__,
)
async def test_a_list_that_moves_once_is_read_again_and_gives_every_client_once(
    change: Callable[[MovingFinsync], None],
) -> None:
    fake = MovingFinsync(list(range(1000, 1300)), after_page=once(change))

    read = await ids_read(fake)

    # Exactly the list as it stands after the change: nothing lost, nothing kept twice.
    assert read == fake.ids
    assert len(read) == len(set(read))
    assert fake.asked.count(1) >= 3  # page 1 of two reads, and its confirmation


async def test_a_delete_on_page_1_loses_no_client_and_keeps_not_the_deleted_one() -> None:
    fake = MovingFinsync(list(range(1000, 1300)), after_page=once(delete_first))

    read = await ids_read(fake)

    assert 1000 not in read  # deleted after page 1 was read the first time
    assert 1100 in read  # shifted onto page 1 by the delete: the one a single read loses
    assert len(read) == 299


async def test_a_create_at_the_front_does_not_push_the_last_client_off_the_end() -> None:
    fake = MovingFinsync(list(range(1000, 1300)), after_page=once(create_at_front))

    read = await ids_read(fake)

    assert read[0] == 999
    assert read[-1] == 1299
    assert len(read) == 301


async def test_pages_that_grow_during_a_read_are_read_to_the_new_last_page() -> None:
    fake = MovingFinsync(list(range(1000, 1300)), after_page=once(grow_a_page))

    read = await ids_read(fake)

    assert read == list(range(1000, 1400))
    assert 4 in fake.asked  # the page that did not exist when the first read began


# ----------------------------------------------------------- a move on every read: no answer


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (delete_first, "changed while it was read: page 1 announced total"),
        (create_at_front, "changed while it was read: page 1 announced total"),
        (grow_a_page, "changed while it was read: page 1 announced total"),
        (delete_first_and_create_at_end, "page 1 was not the same at the end"),
    ],
    ids=["delete_first", "create_at_front", "grow_a_page", "delete_and_create"],
)
async def test_a_list_that_moves_on_every_read_is_an_inconsistent_read_after_three(
    change: Callable[[MovingFinsync], None], says: str
) -> None:
    fake = MovingFinsync(list(range(1000, 1300)), after_page=every_read(change))

    with pytest.raises(UpstreamInconsistentReadError) as caught:
        await make(fake).list_clients()

    assert caught.value.code == "inconsistent_read"
    assert caught.value.transient
    assert says in caught.value.message
    assert caught.value.message.endswith(f"read {READ_ATTEMPTS} times, never consistent")
    assert API_KEY not in str(caught.value)


async def test_the_number_of_reads_is_bounded_by_read_attempts() -> None:
    fake = MovingFinsync(list(range(1000, 1300)), after_page=every_read(delete_first))

    with pytest.raises(UpstreamInconsistentReadError):
        await make(fake, read_attempts=2).list_clients()

    # Two reads, each stopped at the first page that disagreed: two deletes in all.
    assert len(fake.ids) == 298


# --------------------------------------------------------------- a server that ignores `page`


@pytest.mark.parametrize("echo_page", [True, False], ids=["says_page_1", "says_no_page"])
async def test_a_server_that_ignores_the_page_is_never_taken_as_the_whole_list(
    echo_page: bool,
) -> None:
    fake = MovingFinsync(list(range(1, 301)), ignore_page=True, echo_page=echo_page)

    with pytest.raises(UpstreamInconsistentReadError) as caught:
        await make(fake).list_clients()

    assert "is `page` ignored?" in caught.value.message


async def test_a_server_that_serves_fewer_clients_a_page_than_it_announces_is_caught() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        page = int(request.url.params["page"])
        ids = range((page - 1) * 50 + 1, page * 50 + 1)
        body = {
            "data": [_client(i) for i in ids],
            "pagination": {"page": page, "pageSize": 100, "total": 300, "totalPages": 3},
        }
        return httpx2.Response(200, content=json.dumps(body))

    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(handler), base_url="https://finsync.test/"
    )
    with pytest.raises(UpstreamInconsistentReadError) as caught:
        await FinsyncClient(http, api_key=SecretStr(API_KEY)).list_clients()
    assert "page 2 of 3 has 50 clients, not 100" in caught.value.message


# ---------------------------------------------------------------- what a read hands its sink


class Sink:
    """Collects the pages of one read, as FinsyncPages does."""

    started = 0

    def __init__(self) -> None:
        type(self).started += 1
        self.pages: dict[int, list[int]] = {}

    def add(self, number: int, clients: Parsed[FinsyncClientRecord]) -> None:
        self.pages[number] = [client.id for client in clients]


async def test_a_read_that_is_started_again_hands_its_pages_to_a_new_sink() -> None:
    # 300 clients, then a delete: the first read's page 3 held 100, the second's holds 99,
    # and the first read's page 1 (with the deleted client) must not survive.
    fake = MovingFinsync(list(range(1000, 1300)), after_page=once(delete_first))
    Sink.started = 0

    sink = await make(fake).each_page(Sink)

    assert Sink.started == 2
    assert sink.pages[1][0] == 1001
    assert [i for page in sorted(sink.pages) for i in sink.pages[page]] == fake.ids


async def test_a_one_page_list_is_read_once_without_confirmation() -> None:
    fake = MovingFinsync(list(range(1, 38)))

    assert await ids_read(fake) == list(range(1, 38))
    assert fake.asked == [1]


async def test_a_list_that_stands_still_is_read_once_and_page_1_confirmed() -> None:
    fake = MovingFinsync(list(range(1, 251)))

    assert await ids_read(fake) == list(range(1, 251))
    assert sorted(fake.asked) == [1, 1, 2, 3]
    assert fake.asked[0] == 1
    assert fake.asked[-1] == 1


# ------------------------------------------------------------------- off the event loop


async def test_pages_are_read_in_a_thread_of_their_own_not_on_the_event_loop() -> None:
    # Validating a page (every client and account) is the longest synchronous step of a
    # load; it runs in the reader's one thread, so the loop sends the next calls meanwhile.
    ids = list(range(1, 251))
    fake = MovingFinsync(ids)
    assert await ids_read(fake) == ids
    readers = [t for t in threading.enumerate() if t.name.startswith("finsync-pages")]
    assert len(readers) == 1
    assert readers[0] is not threading.current_thread()


# ------------------------------------------------------------------- page 1 read again


def _unreadable_id_at_the_end(fake: MovingFinsync, page: int) -> None:
    # Right after page 2 (the last page of every read here): page 1's re-read sees its
    # first client with an id nobody can read; total and paging stay.
    if page == 2:
        fake.unreadable_first = True


async def test_a_client_of_page_1_that_turns_unreadable_by_the_end_is_a_moved_list() -> None:
    fake = MovingFinsync(list(range(1000, 1150)), after_page=_unreadable_id_at_the_end)

    with pytest.raises(UpstreamInconsistentReadError) as caught:
        await make(fake, read_attempts=1).list_clients()

    assert "page 1 was not the same at the end" in caught.value.message


_RECORDS: list[object] = [
    _client(1),
    {"id": "2", "name": None, "accounts": "not a list"},  # lenient fields unreadable: kept
    {"id": 3, "type": "x", "created_at": "yesterday", "accounts": [{"no": "id"}, 5]},
    {"id": 4, "unreadable": "ours, not the upstream's"},
    {"id": "four"},  # no readable id: rejected
    {"name": "no id at all"},
    {"id": True},
    {"id": 5.5},
    {"id": "6.0"},
    7,
    None,
    ["a list"],
]


@pytest.mark.parametrize(
    "body",
    [
        {"data": _RECORDS, "pagination": {"page": 1, "pageSize": 12, "total": 30}},
        {"data": _RECORDS, "pagination": {"page": "one", "total_pages": 3, "page_size": 0}},
        {"data": _RECORDS, "pagination": "unreadable"},
        {"data": _RECORDS},
        _RECORDS,
        [],
        {"data": None},
    ],
    ids=[
        "envelope",
        "lenient-pagination",
        "unreadable-pagination",
        "no-pagination",
        "bare",
        "empty",
        "null-data",
    ],
)
def test_page_1_read_for_its_ids_sees_what_the_whole_validation_sees(body: object) -> None:
    # The re-read compares ids, entries and paging (`_Read.confirm`); read without
    # validating each client whole, it must still find exactly what a whole read finds.
    whole = _read_page(body)
    ids_only = _read_ids_page(body)

    assert ids_only.ids() == whole.ids()
    assert ids_only.entries == whole.entries
    assert (ids_only.pagination is None) == (whole.pagination is None)
    if whole.pagination is not None:
        assert ids_only.pagination is not None
        assert ids_only.pagination.announced() == whole.pagination.announced()
        assert ids_only.pagination.page == whole.pagination.page


@pytest.mark.parametrize("body", [{"pagination": {}}, {"data": "x"}, "text", 5])
def test_a_page_1_that_cannot_be_read_fails_its_re_read_as_it_fails_a_whole_read(
    body: object,
) -> None:
    with pytest.raises(UpstreamBadResponseError) as whole:
        _read_page(body)
    with pytest.raises(UpstreamBadResponseError) as ids_only:
        _read_ids_page(body)
    # The same message, but for the name of the model read (pydantic's words for a body
    # that is not an object).
    assert ids_only.value.message.replace("_ClientIdsPage", "_ClientPage") == (whole.value.message)
