"""FinSync adapter: clients with their accounts, and creating external clients.

Everything inferred about FinSync (see upstreams.md) is in the INFERRED block
below, so it is one edit when the live API says otherwise.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx2
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    field_validator,
)

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamNotFoundError,
    UpstreamOutcomeUnknownError,
    UpstreamRejectedError,
    UpstreamUnauthorizedError,
)
from app.upstreams.http import first_upstream_error, generic_status_error, parse, send

UPSTREAM = "finsync"

# --- INFERRED (upstreams.md): confirm against the live API -------------------
PAGE_SIZE = 100  # pageSize maximum
# The list envelope is {"data": [...], "pagination": {"page", "pageSize", "total",
# "totalPages"}}. Tolerated too: a bare array, snake_case pagination keys, and pagination
# without totalPages (counted from total, else pages are walked until one brings nothing new).
# -----------------------------------------------------------------------------

# Not an inference but a guard: a listing that claims more pages than this is refused rather
# than walked (100,000 clients at 100 a page).
MAX_PAGES = 1000


class FinsyncAccount(BaseModel):
    """A FinSync account as sent inside a client."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    name: str | None = None
    currency_name: str
    client_id: int | None = None
    # None when FinSync sent no number (null, text): the account is listed without a position.
    balance: Decimal | None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("balance", mode="before")
    @classmethod
    def _number_or_none(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | Decimal):
            return value
        if isinstance(value, str):
            try:
                return Decimal(value.strip())
            except ArithmeticError:
                return None
        return None


class FinsyncClientRecord(BaseModel):
    """A FinSync client (type 0 internal, 1 external; anything else is not guessed)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    name: str
    description: str | None = None
    company_id: int | None = None
    # An int as sent (0 and 1 are known); anything that is not an integer is kept as its
    # text, so interpretation can leave the client out and quote it in a warning.
    type: int | str
    # POST answers carry no accounts; a new client has none.
    accounts: list[FinsyncAccount] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _type_as_sent(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            return int(value)  # 1.0 is 1
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value.strip())
        return "null" if value is None else str(value)

    @field_validator("accounts", mode="before")
    @classmethod
    def _null_is_no_accounts(cls, value: Any) -> Any:
        return [] if value is None else value


class _Pagination(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page: int | None = None
    page_size: int | None = Field(
        default=None, validation_alias=AliasChoices("pageSize", "page_size"), ge=1
    )
    total: int | None = Field(default=None, ge=0)
    total_pages: int | None = Field(
        default=None, validation_alias=AliasChoices("totalPages", "total_pages"), ge=0
    )


class _ClientPage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    data: list[FinsyncClientRecord]
    pagination: _Pagination | None = None


_CLIENT = TypeAdapter(FinsyncClientRecord)
_PAGE_OR_ARRAY = TypeAdapter(_ClientPage | list[FinsyncClientRecord])


def _total_pages(first: _ClientPage) -> int | None:
    """How many pages the listing has, from page 1; None when it does not say."""
    pagination = first.pagination
    if pagination is None:
        # A bare array: the whole list, unless it fills a page and may be only the first.
        return None if len(first.data) >= PAGE_SIZE else 1
    if pagination.total_pages is not None:
        count = pagination.total_pages
    elif pagination.total is not None:
        page_size = pagination.page_size or max(len(first.data), 1)
        count = -(-pagination.total // page_size)
    else:
        return None if first.data else 1
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
        return UpstreamUnauthorizedError(UPSTREAM, "the API key was refused", status_code=status)
    if status == 404:
        return UpstreamNotFoundError(UPSTREAM, detail or "not found", status_code=status)
    if status == 400 and detail is not None:
        return UpstreamRejectedError(
            UPSTREAM, f"rejected the request: {detail}", status_code=status
        )
    return generic_status_error(UPSTREAM, response)


class FinsyncClient:
    """Talks to FinSync over an injected ``httpx2.AsyncClient`` whose base URL is FinSync's."""

    def __init__(
        self, http: httpx2.AsyncClient, *, api_key: SecretStr, page_concurrency: int = 4
    ) -> None:
        self._http = http
        self._api_key = api_key
        self._page_concurrency = page_concurrency

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
        )

    async def _list_page(self, page: int) -> _ClientPage:
        body = await self._get("/api/clients", {"page": page, "pageSize": PAGE_SIZE})
        parsed = parse(UPSTREAM, _PAGE_OR_ARRAY, body, "client list")
        if isinstance(parsed, list):
            return _ClientPage(data=parsed, pagination=None)
        return parsed

    async def list_clients(self) -> list[FinsyncClientRecord]:
        """Every client of the company, page 1 first, then the rest a few at a time."""
        first = await self._list_page(1)
        total_pages = _total_pages(first)
        if total_pages is None:
            pages = await self._walk_pages(first)
        else:
            pages = [first, *await self._pages_concurrently(range(2, total_pages + 1))]
        seen: dict[int, FinsyncClientRecord] = {}
        for page in pages:
            for client in page.data:
                # Pages can shift under concurrent writes: the same client may appear twice.
                seen.setdefault(client.id, client)
        return list(seen.values())

    async def _pages_concurrently(self, numbers: range) -> list[_ClientPage]:
        if not numbers:
            return []
        limit = asyncio.Semaphore(self._page_concurrency)

        async def fetch(page: int) -> _ClientPage:
            async with limit:
                return await self._list_page(page)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(fetch(number)) for number in numbers]
        except ExceptionGroup as failures:
            # One failed page fails the listing; surface it as the plain upstream error.
            raise first_upstream_error(failures) from None
        return [task.result() for task in tasks]

    async def _walk_pages(self, first: _ClientPage) -> list[_ClientPage]:
        """Pages one after another while each brings clients not seen before.

        For answers that do not say how many pages there are; a server that ignores `page`
        and repeats itself stops the walk after one extra call.
        """
        pages = [first]
        seen = {client.id for client in first.data}
        for number in range(2, MAX_PAGES + 1):
            page = await self._list_page(number)
            new = {client.id for client in page.data} - seen
            if not new:
                return pages
            pages.append(page)
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
