"""FinSync adapter: clients with their accounts, and creating external clients.

Everything inferred about FinSync (marked `x-inferred` in openapi/finsync.yaml) is in the
INFERRED block below, so it is one edit when the live API says otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

import httpx2
from pydantic import AliasChoices, BeforeValidator, Field, SecretStr, TypeAdapter

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
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

# --- INFERRED (x-inferred in openapi/finsync.yaml): confirm against the live API ---
PAGE_SIZE = 100  # pageSize maximum
# The list envelope is {"data": [...], "pagination": {"page", "pageSize", "total",
# "totalPages"}}. Tolerated too: a bare array, snake_case pagination keys, and pagination
# without totalPages (counted from total, else pages are walked until one brings nothing new).
# -----------------------------------------------------------------------------

# Not an inference but a guard: a listing that claims more pages than this is refused rather
# than walked (100,000 clients at 100 a page).
MAX_PAGES = 1000


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
    page: WireInt | None = None
    page_size: WireInt | None = Field(
        default=None, validation_alias=AliasChoices("pageSize", "page_size"), ge=1
    )
    total: WireInt | None = Field(default=None, ge=0)
    total_pages: WireInt | None = Field(
        default=None, validation_alias=AliasChoices("totalPages", "total_pages"), ge=0
    )


_CLIENT = TypeAdapter(FinsyncClientRecord)


class _ClientPage(TolerantModel):
    # The list itself is the envelope: not a list fails the page (and so the connection).
    data: Annotated[Parsed[FinsyncClientRecord], each_of(_CLIENT)]
    pagination: _Pagination | None = None


_PAGE = TypeAdapter(_ClientPage)


def _total_pages(first: _ClientPage) -> int | None:
    """How many pages the listing has, from page 1; None when it does not say."""
    pagination = first.pagination
    size = len(first.data.records) + len(first.data.rejected)
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


def _read_page(body: Any) -> _ClientPage:
    if isinstance(body, list):
        return _ClientPage(data=parse_each(UPSTREAM, _CLIENT, body, "client list"))
    return parse(UPSTREAM, _PAGE, body, "client list")


PageHandler = Callable[[int, Parsed[FinsyncClientRecord]], None]
"""Takes one page of the client list (its number, its clients) as it arrives."""


class FinsyncClient:
    """Talks to FinSync over an injected ``httpx2.AsyncClient`` whose base URL is FinSync's."""

    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        api_key: SecretStr,
        page_concurrency: int = 4,
        retries: RetryPolicy = NO_RETRIES,
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._page_concurrency = page_concurrency
        self._retries = retries

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
        return _read_page(await self._page_body(page))

    async def _page_body(self, page: int) -> Any:
        return await self._get("/api/clients", {"page": page, "pageSize": PAGE_SIZE})

    async def each_page(self, on_page: PageHandler) -> None:
        """Every page of the client list handed to `on_page` as it arrives, with its number:
        page 1 first, then the rest a few at a time, in whatever order they land. Pages are
        not kept here, so a caller can work on one while the next are still on the wire.

        Clients without a readable `id` come back rejected, each on its own."""
        first = await self._list_page(1)
        on_page(1, first.data)
        total_pages = _total_pages(first)
        if total_pages is None:
            await self._walk_pages(first, on_page)
        else:
            await self._pages_concurrently(range(2, total_pages + 1), on_page)

    async def list_clients(self) -> Parsed[FinsyncClientRecord]:
        """Every client of the company, once each, in page order."""
        pages: dict[int, Parsed[FinsyncClientRecord]] = {}
        await self.each_page(pages.__setitem__)
        seen: dict[int, FinsyncClientRecord] = {}
        rejected: list[Rejected] = []
        for number in sorted(pages):
            for client in pages[number].records:
                # Pages can shift under concurrent writes: the same client may appear twice.
                seen.setdefault(client.id, client)
            rejected.extend(pages[number].rejected)
        return Parsed(list(seen.values()), rejected)

    async def _pages_concurrently(self, numbers: range, on_page: PageHandler) -> None:
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
            # Let the call that was waiting for the place go out before this page is read.
            await asyncio.sleep(0)
            on_page(number, _read_page(body).data)

        try:
            async with asyncio.TaskGroup() as group:
                for number in numbers:
                    group.create_task(fetch(number))
        except ExceptionGroup as failures:
            # One failed page fails the listing; surface it as the plain upstream error.
            raise first_upstream_error(failures) from None

    async def _walk_pages(self, first: _ClientPage, on_page: PageHandler) -> None:
        """Pages one after another while each brings clients not seen before.

        For answers that do not say how many pages there are; a server that ignores `page`
        and repeats itself stops the walk after one extra call.
        """
        seen = {client.id for client in first.data.records}
        for number in range(2, MAX_PAGES + 1):
            page = await self._list_page(number)
            new = {client.id for client in page.data.records} - seen
            if not new:
                return
            on_page(number, page.data)
            seen |= new
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
