"""FinSync adapter: clients with their accounts, and creating external clients.

Everything inferred about FinSync (marked `x-inferred` in openapi/finsync.yaml) is in the
INFERRED block below, so it is one edit when the live API says otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Protocol, TypeVar

import httpx2
from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, TypeAdapter

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamInconsistentReadError,
    UpstreamNotFoundError,
    UpstreamOutcomeUnknownError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
)
from app.upstreams.http import (
    NO_RETRIES,
    RetryPolicy,
    first_upstream_error,
    generic_status_error,
    parse,
    send,
)
from app.upstreams.reading import (
    MAX_INT_DIGITS,
    Parsed,
    Rejected,
    Text,
    Timestamp,
    TolerantModel,
    WireDecimal,
    WireInt,
    clean_text,
    each_of,
    integer_text,
    parse_each,
)

UPSTREAM = "finsync"

logger = logging.getLogger(__name__)

# --- INFERRED (x-inferred in openapi/finsync.yaml): confirm against the live API ---
PAGE_SIZE = 100  # pageSize maximum
# The query names of the list (documented, but not seen honoured on the live API): a server
# that ignores them is detected (every page checked against the first), never trusted.
PAGE_PARAM = "page"
PAGE_SIZE_PARAM = "pageSize"
# The list envelope is {"data": [...], "pagination": {"page", "pageSize", "total",
# "totalPages"}}. Tolerated too: a bare array, snake_case pagination keys, and pagination
# without totalPages (counted from total, else pages are walked until an empty one).
DATA_KEY = "data"
PAGINATION_KEY = "pagination"
PAGE_KEYS = ("page",)
PAGE_SIZE_KEYS = ("pageSize", "page_size")
TOTAL_KEYS = ("total",)
TOTAL_PAGES_KEYS = ("totalPages", "total_pages")
# -----------------------------------------------------------------------------

# Not an inference but a guard: a listing that claims more pages than this is refused rather
# than walked (100,000 clients at 100 a page).
MAX_PAGES = 1000

READ_ATTEMPTS = 3
"""Reads of the whole list (the first and two more) before pages that keep disagreeing with
each other are an `UpstreamInconsistentReadError`: clients created or deleted during a read
shift the pages after them, and a read a moment later usually agrees."""


class FinsyncAccount(TolerantModel):
    """A FinSync account as sent inside a client; only its `id` is required. A balance or
    currency that is absent or unreadable is None: the interpreter leaves the position out."""

    id: WireInt
    name: Text | None = None
    currency_name: Text | None = None
    client_id: WireInt | None = None
    # A number as decoded (exact Decimal or int), or a decimal written as text.
    balance: WireDecimal | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


def _type_as_sent(value: Any) -> Any:
    # An int as sent (0 and 1 are known); anything that is not an integer is kept as its
    # text, so interpretation can leave the client out and quote it in a warning.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, Decimal)
        and value.is_finite()
        and value.adjusted() < MAX_INT_DIGITS
        and value == value.to_integral_value()
    ):
        return int(value)  # 1.0 is 1
    if isinstance(value, str):
        try:
            return integer_text(value)
        except ValueError:
            pass  # "1_000", Arabic-Indic digits, "x": quoted as sent
    return "null" if value is None else clean_text(str(value))[: MAX_INT_DIGITS * 4]


class FinsyncClientRecord(TolerantModel):
    """A FinSync client (type 0 internal, 1 external; anything else is not guessed).

    Only `id` is required. `accounts` is read account by account: one that cannot be read
    is rejected alone; a value that is not a list makes the field unreadable (no accounts).
    """

    id: WireInt
    name: Text | None = None
    description: Text | None = None
    company_id: WireInt | None = None
    type: Annotated[int | str, BeforeValidator(_type_as_sent)] = "null"
    # POST answers carry no accounts; a new client has none.
    accounts: Annotated[Parsed[FinsyncAccount], each_of(TypeAdapter(FinsyncAccount))] = Field(
        default_factory=lambda: Parsed[FinsyncAccount]([], [])
    )
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None


class _Pagination(TolerantModel):
    page: WireInt | None = Field(default=None, validation_alias=AliasChoices(*PAGE_KEYS))
    page_size: WireInt | None = Field(
        default=None, validation_alias=AliasChoices(*PAGE_SIZE_KEYS), ge=1
    )
    total: WireInt | None = Field(default=None, validation_alias=AliasChoices(*TOTAL_KEYS), ge=0)
    total_pages: WireInt | None = Field(
        default=None, validation_alias=AliasChoices(*TOTAL_PAGES_KEYS), ge=0
    )

    def announced(self) -> tuple[int | None, int | None, int | None]:
        """What every page of one read must say alike: the list's size and its paging."""
        return (self.total, self.total_pages, self.page_size)


_CLIENT = TypeAdapter(FinsyncClientRecord)


class _ClientPage(TolerantModel):
    # The list itself is the envelope: not a list fails the page (and so the connection).
    data: Annotated[Parsed[FinsyncClientRecord], each_of(_CLIENT)] = Field(
        validation_alias=DATA_KEY
    )
    pagination: _Pagination | None = Field(default=None, validation_alias=PAGINATION_KEY)

    @property
    def entries(self) -> int:
        """Every record the page holds, readable or not."""
        return len(self.data.records) + len(self.data.rejected)

    def ids(self) -> set[int]:
        return {client.id for client in self.data.records}


_PAGE = TypeAdapter(_ClientPage)


class _ClientId(TolerantModel):
    """A client as page 1's re-read needs it: its id alone. A record is rejected exactly when
    it is as a `FinsyncClientRecord` (not an object, or no readable `id`: every other field
    of that model is lenient), so the ids read and the entries counted are the same."""

    id: WireInt


_CLIENT_ID = TypeAdapter(_ClientId)


class _ClientIdsPage(TolerantModel):
    """A page of the client list read for its clients' ids, its entries and its pagination
    only (`_Read.confirm`): its accounts and other fields are not validated."""

    data: Annotated[Parsed[_ClientId], each_of(_CLIENT_ID)] = Field(validation_alias=DATA_KEY)
    pagination: _Pagination | None = Field(default=None, validation_alias=PAGINATION_KEY)

    @property
    def entries(self) -> int:
        return len(self.data.records) + len(self.data.rejected)

    def ids(self) -> set[int]:
        return {client.id for client in self.data.records}


_IDS_PAGE = TypeAdapter(_ClientIdsPage)
_AnyPage = _ClientPage | _ClientIdsPage


def _total_pages(first: _ClientPage) -> int | None:
    """How many pages the listing has, from page 1; None when it does not say."""
    pagination = first.pagination
    size = first.entries
    if pagination is None:
        # A bare array: the whole list, unless it fills a page and may be only the first.
        return None if size >= PAGE_SIZE else 1
    if pagination.total_pages is not None:
        count = pagination.total_pages
    elif pagination.total is not None:
        page_size = pagination.page_size or max(size, 1)
        count = -(-pagination.total // page_size)
    else:
        return None if size else 1
    if count > MAX_PAGES:
        raise UpstreamBadResponseError(UPSTREAM, f"client list claims {count} pages")
    return count


def _error_text(body: Any) -> str | None:
    # FinSync's `error` is documented; its shape (string or object) is inferred string.
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, str):
            return error[:200]
        if isinstance(error, dict):
            message = error.get("message")
            return message[:200] if isinstance(message, str) else None
    return None


def _map_error(response: httpx2.Response, body: Any) -> UpstreamError:
    status = response.status_code
    detail = _error_text(body)
    if status == 401:
        return UpstreamUnauthorizedError(UPSTREAM, "the API key was refused")
    if status == 404:
        return UpstreamNotFoundError(UPSTREAM, detail or "not found")
    if status == 400 and detail is not None:
        return UpstreamRejectedError(UPSTREAM, f"rejected the request: {detail}")
    return generic_status_error(UPSTREAM, response)


# Pages are read (validated into records, every client and account) in one thread of their
# own, in the order they land: about a millisecond of the interpreter per 100 clients that,
# on the event loop, held back the next page's call and every other request (`/healthz`
# included), most at the start and end of a cold read. The loop keeps the calls, the checks
# and the handing on.
_READER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsync-pages")


async def _read_page_aside(body: Any) -> _ClientPage:
    return await asyncio.get_running_loop().run_in_executor(_READER, _read_page, body)


def _read_page(body: Any) -> _ClientPage:
    if isinstance(body, list):
        parsed = parse_each(UPSTREAM, _CLIENT, body, "client list")
        return _PAGE.validate_python({DATA_KEY: parsed})
    return parse(UPSTREAM, _PAGE, body, "client list")


def _read_ids_page(body: Any) -> _ClientIdsPage:
    """`_read_page` for page 1's re-read: the same checks of the envelope and of each
    record's id, nothing more (about a tenth of the time at 100 clients a page)."""
    if isinstance(body, list):
        parsed = parse_each(UPSTREAM, _CLIENT_ID, body, "client list")
        return _IDS_PAGE.validate_python({DATA_KEY: parsed})
    return parse(UPSTREAM, _IDS_PAGE, body, "client list")


def _moved(reason: str) -> UpstreamInconsistentReadError:
    return UpstreamInconsistentReadError(UPSTREAM, f"the client list {reason}")


def _announcement(page: _AnyPage) -> tuple[int | None, int | None, int | None] | None:
    return None if page.pagination is None else page.pagination.announced()


def _announced_text(page: _AnyPage) -> str:
    announced = _announcement(page)
    if announced is None:
        return "no pagination"
    total, total_pages, page_size = announced
    return f"total {total}, totalPages {total_pages}, pageSize {page_size}"


@dataclass
class _Read:
    """One read of the whole list, page 1 first: what page 1 announced, and what the pages
    read since hold. Every page is checked against them before it is handed on."""

    first: _ClientPage
    pages: int | None
    """How many pages page 1 announced; None when it does not say (pages are walked)."""
    seen: set[int] = field(default_factory=set)
    entries: int = 0
    pages_read: int = 0

    @classmethod
    def of(cls, first: _ClientPage) -> _Read:
        _answers_page(1, first)
        read = cls(first, _total_pages(first))
        read._take(first)
        return read

    @property
    def full_page(self) -> int:
        """The entries of every page but the last: announced, else as many as page 1 has."""
        announced = self.first.pagination.page_size if self.first.pagination else None
        return announced or self.first.entries

    def check(self, number: int, page: _ClientPage) -> None:
        """Page `number` agrees with page 1 and holds no client already read; else the list
        moved under this read (UpstreamInconsistentReadError)."""
        _answers_page(number, page)
        if _announcement(page) != _announcement(self.first):
            raise _moved(
                f"changed while it was read: page 1 announced {_announced_text(self.first)}, "
                f"page {number} {_announced_text(page)}"
            )
        ids = page.ids()
        repeated = ids & self.seen
        if repeated and len(repeated) == page.entries:
            # Nothing new at all: the server answers the same page whatever is asked.
            raise _moved(
                f"repeats itself: page {number} holds only clients already read "
                "(is `page` ignored?)"
            )
        if repeated:
            # A client created or deleted before them shifted the pages after it by one.
            raise _moved(
                f"moved while it was read: client {min(repeated)} came on page {number} "
                "and on an earlier one"
            )
        if self.pages is not None and number < self.pages and page.entries < self.full_page:
            raise _moved(
                f"is short: page {number} of {self.pages} has {page.entries} clients, "
                f"not {self.full_page}"
            )
        self._take(page)

    def check_complete(self) -> None:
        """Every client page 1 announced was read: as many entries as its `total` (entries,
        not distinct ids: a client twice on one page is for interpretation to warn about)."""
        total = self.first.pagination.total if self.first.pagination else None
        if total is not None and self.entries != total:
            raise _moved(f"gave {self.entries} clients of the {total} it announced")

    def confirm(self, again: _ClientIdsPage) -> None:
        """Page 1 read again at the end holds the same clients under the same announcement:
        a delete and a create that keep the total are caught where they show first."""
        _answers_page(1, again)
        first = self.first
        if (_announcement(again), again.ids(), again.entries) != (
            _announcement(first),
            first.ids(),
            first.entries,
        ):
            raise _moved("changed while it was read: page 1 was not the same at the end")

    def _take(self, page: _ClientPage) -> None:
        self.seen |= page.ids()
        self.entries += page.entries
        self.pages_read += 1


def _answers_page(number: int, page: _AnyPage) -> None:
    echoed = page.pagination.page if page.pagination else None
    if echoed is not None and echoed != number:
        raise _moved(f"answered page {echoed} when asked for page {number} (is `page` ignored?)")


PageHandler = Callable[[int, Parsed[FinsyncClientRecord]], None]
"""Takes one page of the client list (its number, its clients) as it arrives."""


class PageSink(Protocol):
    """What one read of the client list hands its pages to, as they arrive."""

    def add(self, number: int, clients: Parsed[FinsyncClientRecord]) -> None: ...


SinkT = TypeVar("SinkT", bound=PageSink)


class _Collected:
    def __init__(self) -> None:
        self.pages: dict[int, Parsed[FinsyncClientRecord]] = {}

    def add(self, number: int, clients: Parsed[FinsyncClientRecord]) -> None:
        self.pages[number] = clients


class FinsyncClient:
    """Talks to FinSync over an injected ``httpx2.AsyncClient`` whose base URL is FinSync's."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        api_key: SecretStr,
        page_concurrency: int = 4,
        retries: RetryPolicy = NO_RETRIES,
        read_attempts: int = READ_ATTEMPTS,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._page_concurrency = page_concurrency
        self._retries = retries
        self._read_attempts = max(1, read_attempts)

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key.get_secret_value()}

    async def _get(self, url: str, params: dict[str, str | int] | None = None) -> Any:
        return await send(
            self._http,
            UPSTREAM,
            "GET",
            url,
            params=params,
            headers=self._headers(),
            map_error=_map_error,
            retries=self._retries,
        )

    async def _list_page(self, page: int) -> _ClientPage:
        return await _read_page_aside(await self._page_body(page))

    async def _page_body(self, page: int) -> Any:
        return await self._get("/api/clients", {PAGE_PARAM: page, PAGE_SIZE_PARAM: PAGE_SIZE})

    async def each_page(self, start: Callable[[], SinkT]) -> SinkT:
        """Every page of the client list handed to a sink as it arrives, with its number:
        page 1 first, then the rest a few at a time, in whatever order they land. Pages are
        not kept here, so a caller can work on one while the next are still on the wire.

        Each page is checked against page 1 before it is handed on (see `_Read`); when they
        disagree (the list moved during the read) the whole list is read again, into a new
        sink from `start`, up to `read_attempts` reads in all. Returns the sink of the read
        whose pages agreed; raises UpstreamInconsistentReadError when none did. Clients
        without a readable `id` come back rejected, each on its own."""
        attempt = 1
        while True:
            # A fresh sink each time: nothing of an abandoned read is left behind in it.
            sink = start()
            try:
                await self._read_all(sink.add)
            except UpstreamInconsistentReadError as exc:
                if attempt >= self._read_attempts:
                    raise UpstreamInconsistentReadError(
                        UPSTREAM, f"{exc.message}; read {attempt} times, never consistent"
                    ) from None
                logger.warning(
                    "finsync: %s; reading it again (read %d of %d)",
                    exc.message,
                    attempt + 1,
                    self._read_attempts,
                )
                attempt += 1
                continue
            return sink

    async def list_clients(self) -> Parsed[FinsyncClientRecord]:
        """Every client of the company, once each, in page order."""
        pages = (await self.each_page(_Collected)).pages
        seen: dict[int, FinsyncClientRecord] = {}
        rejected: list[Rejected] = []
        for number in sorted(pages):
            for client in pages[number].records:
                seen.setdefault(client.id, client)
            rejected.extend(pages[number].rejected)
        return Parsed(list(seen.values()), rejected)

    async def _read_all(self, on_page: PageHandler) -> None:
        first = await self._list_page(1)
        read = _Read.of(first)
        on_page(1, first.data)
        if read.pages is None:
            await self._walk_pages(read, on_page)
        else:
            await self._pages_concurrently(read, range(2, read.pages + 1), on_page)
        read.check_complete()
        if read.pages_read > 1:
            # One call more per read of several pages (0.2% at 500 pages), and the only check
            # that sees a delete on page 1 paired with a create elsewhere, or a create at the
            # front paired with a delete: the total stays, every page agrees, a client is lost.
            # Read for what is compared (ids, entries, pagination), not validated whole.
            read.confirm(_read_ids_page(await self._page_body(1)))

    async def _pages_concurrently(self, read: _Read, numbers: range, on_page: PageHandler) -> None:
        if not numbers:
            return
        # Polite to FinSync, whose capacity is unknown: a few pages on the wire at a time
        # (`page_concurrency`), each handed on as soon as it lands.
        limit = asyncio.Semaphore(self._page_concurrency)

        async def fetch(number: int) -> None:
            # Only the call holds a place on the wire: reading the page and handing it on
            # happen after, while the next call is already out.
            async with limit:
                body = await self._page_body(number)
            # Read aside: the call that was waiting for the place goes out meanwhile.
            page = await _read_page_aside(body)
            read.check(number, page)
            on_page(number, page.data)

        try:
            async with asyncio.TaskGroup() as group:
                for number in numbers:
                    group.create_task(fetch(number))
        except ExceptionGroup as failures:
            # One failed page fails the listing (and one that disagrees, this read of it);
            # surface it as the plain upstream error.
            raise first_upstream_error(failures) from None

    async def _walk_pages(self, read: _Read, on_page: PageHandler) -> None:
        """Pages one after another until one comes empty, for answers that do not say how
        many pages there are; a server that ignores `page` repeats itself and is caught."""
        for number in range(2, MAX_PAGES + 1):
            page = await self._list_page(number)
            if not page.entries:
                return
            read.check(number, page)
            on_page(number, page.data)
        raise UpstreamBadResponseError(UPSTREAM, f"client list goes on past {MAX_PAGES} pages")

    async def get_client(self, client_id: int) -> FinsyncClientRecord:
        body = await self._get(f"/api/clients/{client_id}")
        return parse(UPSTREAM, _CLIENT, body, "client")

    async def create_client(self, name: str, description: str | None) -> FinsyncClientRecord:
        """Create an external client. Not idempotent upstream: an unknown outcome raises
        UpstreamOutcomeUnknownError and the caller must check before trying again."""
        payload: dict[str, str] = {"name": name}
        if description is not None:
            payload["description"] = description
        body = await send(
            self._http,
            UPSTREAM,
            "POST",
            "/api/clients",
            json_body=payload,
            headers=self._headers(),
            map_error=_map_error,
            idempotent=False,
        )
        try:
            return parse(UPSTREAM, _CLIENT, body, "created client")
        except UpstreamBadResponseError as exc:
            # Created, but the answer does not say what: the caller looks it up by name.
            raise UpstreamOutcomeUnknownError(UPSTREAM, exc.message) from exc
