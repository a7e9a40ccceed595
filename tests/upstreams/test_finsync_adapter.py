"""FinsyncClient against a fake FinSync at the transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from app.upstreams.errors import (
    UpstreamBadResponseError,
    UpstreamInconsistentReadError,
    UpstreamNotFoundError,
    UpstreamOutcomeUnknownError,
    UpstreamRejectedError,
    UpstreamTimeoutError,
    UpstreamUnauthorizedError,
    UpstreamUnavailableError,
)
from app.upstreams.finsync import FinsyncClient, FinsyncClientRecord
from app.upstreams.reading import Parsed

pytestmark = pytest.mark.anyio

API_KEY = "test-finsync-key"
Handler = Callable[[httpx2.Request], httpx2.Response]


def client_json(client_id: int, *, balance: str = "10.5", type_: int = 0) -> str:
    return (
        f'{{"id": {client_id}, "name": "Client {client_id}", "description": null, '
        f'"company_id": 7, "type": {type_}, "created_at": "2024-01-01T00:00:00Z", '
        f'"updated_at": "2024-01-01T00:00:00Z", "accounts": [{{"id": {client_id * 10}, '
        f'"name": "ARS", "currency_name": "ARS", "client_id": {client_id}, '
        f'"balance": {balance}, "created_at": "2024-01-01T00:00:00Z", '
        f'"updated_at": "2024-01-01T00:00:00Z"}}]}}'
    )


def make(handler: Handler) -> FinsyncClient:
    http = httpx2.AsyncClient(
        transport=httpx2.MockTransport(handler), base_url="https://finsync.test/"
    )
    return FinsyncClient(http, api_key=SecretStr(API_KEY), page_concurrency=2)


class PagedFinsync:
    """A fake FinSync serving `count` clients in pages of the requested size."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.headers.get("x-api-key") != API_KEY:
            return httpx2.Response(401, json={"error": "Unauthorized"})
        page = int(request.url.params["page"])
        size = int(request.url.params["pageSize"])
        ids = range((page - 1) * size + 1, min(page * size, self.count) + 1)
        total_pages = -(-self.count // size)
        body = (
            '{"data": [' + ",".join(client_json(i) for i in ids) + "], "
            f'"pagination": {{"page": {page}, "pageSize": {size}, "total": {self.count}, '
            f'"totalPages": {total_pages}}}}}'
        )
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})


async def test_lists_every_page_of_100_and_sends_the_key() -> None:
    fake = PagedFinsync(count=342)
    clients = await make(fake).list_clients()
    assert [c.id for c in clients] == list(range(1, 343))
    # Every page once, and page 1 again at the end to confirm nothing moved.
    assert len(fake.requests) == 5
    assert all(r.url.params["pageSize"] == "100" for r in fake.requests)
    assert fake.requests[0].url.params["page"] == "1"
    assert fake.requests[-1].url.params["page"] == "1"
    assert sorted(r.url.params["page"] for r in fake.requests[1:-1]) == ["2", "3", "4"]


async def test_balance_numbers_decode_to_exact_decimals() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = (
            "["
            + client_json(1, balance="0.30000000000000004")
            + ","
            + client_json(2, balance="98765432109876543.21")
            + "]"
        )
        return httpx2.Response(200, content=body)

    clients = await make(handler).list_clients()
    assert clients[0].accounts[0].balance == Decimal("0.30000000000000004")
    assert clients[1].accounts[0].balance == Decimal("98765432109876543.21")


async def test_accepts_a_bare_array_instead_of_the_envelope() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content="[" + client_json(5) + "]")

    clients = await make(handler).list_clients()
    assert [c.id for c in clients] == [5]


async def test_a_client_on_two_pages_is_a_moved_list_never_quietly_deduplicated() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        page = int(request.url.params["page"])
        ids = [1, 2] if page == 1 else [2, 3]
        body = (
            '{"data": [' + ",".join(client_json(i) for i in ids) + "], "
            f'"pagination": {{"page": {page}, "pageSize": 2, "total": 4, "totalPages": 2}}}}'
        )
        return httpx2.Response(200, content=body)

    with pytest.raises(UpstreamInconsistentReadError) as caught:
        await make(handler).list_clients()
    assert caught.value.transient
    assert "client 2 came on page 2 and on an earlier one" in caught.value.message


def envelope(ids: range | list[int], pagination: dict[str, int] | None) -> httpx2.Response:
    body = '{"data": [' + ",".join(client_json(i) for i in ids) + "]"
    if pagination is not None:
        body += ', "pagination": ' + json.dumps(pagination)
    return httpx2.Response(200, content=body + "}")


def page_ids(request: httpx2.Request, count: int, size: int = 100) -> range:
    page = int(request.url.params["page"])
    return range((page - 1) * size + 1, min(page * size, count) + 1)


async def test_pages_are_counted_from_total_when_total_pages_is_missing() -> None:
    requested: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        page = int(request.url.params["page"])
        requested.append(str(page))
        return envelope(page_ids(request, 250), {"page": page, "pageSize": 100, "total": 250})

    clients = await make(handler).list_clients()
    assert [c.id for c in clients] == list(range(1, 251))
    assert sorted(requested) == ["1", "1", "2", "3"]


async def test_snake_case_pagination_keys_are_understood() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return envelope(page_ids(request, 150), {"page_size": 100, "total_pages": 2})

    clients = await make(handler).list_clients()
    assert [c.id for c in clients] == list(range(1, 151))


async def test_pagination_that_does_not_count_is_walked_until_a_page_brings_nothing() -> None:
    requested: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requested.append(request.url.params["page"])
        # A server that caps pages at 50 whatever is asked, and only says the page number.
        page = int(request.url.params["page"])
        return envelope(page_ids(request, 120, size=50), {"page": page})

    clients = await make(handler).list_clients()
    assert [c.id for c in clients] == list(range(1, 121))
    # Until an empty page, then page 1 again to confirm.
    assert requested == ["1", "2", "3", "4", "1"]


async def test_a_full_bare_array_is_followed_by_the_next_page() -> None:
    requested: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requested.append(request.url.params["page"])
        ids = page_ids(request, 130)
        return httpx2.Response(200, content="[" + ",".join(client_json(i) for i in ids) + "]")

    clients = await make(handler).list_clients()
    assert [c.id for c in clients] == list(range(1, 131))
    assert requested == ["1", "2", "3", "1"]


async def test_a_server_that_ignores_the_page_is_caught_not_taken_as_the_whole_list() -> None:
    requested: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requested.append(request.url.params["page"])
        return httpx2.Response(
            200, content="[" + ",".join(client_json(i) for i in range(1, 101)) + "]"
        )

    with pytest.raises(UpstreamInconsistentReadError) as caught:
        await make(handler).list_clients()
    assert "page 2 holds only clients already read" in caught.value.message
    # Each read stops at the page that repeats the first; three reads in all.
    assert requested == ["1", "2"] * 3


async def test_a_listing_claiming_too_many_pages_is_a_bad_response_not_a_flood() -> None:
    requested: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requested.append(request.url.params["page"])
        return envelope(range(1, 101), {"page": 1, "pageSize": 100, "totalPages": 10**7})

    with pytest.raises(UpstreamBadResponseError):
        await make(handler).list_clients()
    assert requested == ["1"]


async def test_a_failing_later_page_fails_the_listing_with_the_upstream_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.params["page"] == "1":
            return PagedFinsync(250)(request)
        return httpx2.Response(500, json={"error": "Internal server error"})

    with pytest.raises(UpstreamUnavailableError) as caught:
        await make(handler).list_clients()
    assert caught.value.code == "upstream_error"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error"),
    [
        (401, '{"error": "Unauthorized"}', "application/json", UpstreamUnauthorizedError),
        (403, '{"error": "Forbidden"}', "application/json", UpstreamUnauthorizedError),
        (500, '{"error": "boom"}', "application/json", UpstreamUnavailableError),
        (502, "<html><body>Bad Gateway</body></html>", "text/html", UpstreamUnavailableError),
        (200, "<html>maintenance</html>", "text/html", UpstreamBadResponseError),
        (200, '{"data": [{"id": 1, "na', "application/json", UpstreamBadResponseError),
        # The list itself is the envelope: `data` that is not a list fails the listing.
        (200, '{"data": {"id": 1}}', "application/json", UpstreamBadResponseError),
        (
            200,
            '{"data": [{"id": 1, "name": "x", "type": 0, "accounts": '
            '[{"id": 2, "currency_name": "ARS", "balance": NaN}]}]}',
            "application/json",
            UpstreamBadResponseError,
        ),
        (418, "short and stout", "text/plain", UpstreamBadResponseError),
    ],
)
async def test_failures_are_translated_at_the_boundary(
    status: int, body: str, content_type: str, error: type[Exception]
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, content=body, headers={"content-type": content_type})

    with pytest.raises(error) as caught:
        await make(handler).list_clients()
    assert API_KEY not in str(caught.value)


async def test_time_out_is_transient_timeout() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ReadTimeout("slow", request=request)

    with pytest.raises(UpstreamTimeoutError) as caught:
        await make(handler).list_clients()
    assert caught.value.transient


async def test_get_client_unknown_is_not_found() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/api/clients/77"
        return httpx2.Response(404, json={"error": "Client not found"})

    with pytest.raises(UpstreamNotFoundError):
        await make(handler).get_client(77)


async def test_create_posts_name_and_description_and_parses_the_answer_without_accounts() -> None:
    seen: list[Any] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(json.loads(request.content))
        return httpx2.Response(
            201,
            json={
                "id": 500,
                "name": "ACME Brokers",
                "description": "FX",
                "company_id": 7,
                "type": 1,
                "company_client_id": 12,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            },
        )

    created = await make(handler).create_client("ACME Brokers", "FX")
    assert seen == [{"name": "ACME Brokers", "description": "FX"}]
    assert created.id == 500
    assert created.type == 1
    assert list(created.accounts) == []


async def test_create_that_loses_its_answer_is_outcome_unknown_not_retried() -> None:
    calls = 0

    def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        raise httpx2.ReadTimeout("no answer", request=request)

    with pytest.raises(UpstreamOutcomeUnknownError):
        await make(handler).create_client("ACME", None)
    assert calls == 1


async def test_create_refused_before_sending_is_a_plain_failure() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("refused", request=request)

    with pytest.raises(UpstreamUnavailableError):
        await make(handler).create_client("ACME", None)


async def test_create_validation_error_is_rejected_with_finsync_message() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(400, json={"error": "name is too long"})

    with pytest.raises(UpstreamRejectedError) as caught:
        await make(handler).create_client("x" * 100, None)
    assert "name is too long" in caught.value.message


async def test_a_client_whose_accounts_are_null_has_none() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content='[{"id": 3, "name": "Sin cuentas", "type": 1, "accounts": null}]'
        )

    clients = await make(handler).list_clients()
    assert [(c.id, list(c.accounts)) for c in clients] == [(3, [])]


async def test_a_body_that_cannot_be_decoded_is_a_bad_response() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200,
            content=b"not gzip at all",
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

    with pytest.raises(UpstreamBadResponseError) as caught:
        await make(handler).list_clients()
    assert caught.value.code == "bad_response"


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b"not gzip at all", {"content-encoding": "gzip"}),
        (b"<html>Created</html>", {"content-type": "text/html"}),
        # Without its id the new client cannot be named: looked up by name instead.
        (b'{"name": "ACME"}', {"content-type": "application/json"}),
    ],
)
async def test_a_create_whose_answer_cannot_be_read_is_outcome_unknown(
    content: bytes, headers: dict[str, str]
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(201, content=content, headers=headers)

    with pytest.raises(UpstreamOutcomeUnknownError):
        await make(handler).create_client("ACME", None)


@pytest.mark.parametrize(
    ("sent", "kept"), [("1", 1), ("1.0", 1), ('"0"', 0), ("null", "null"), ('"x"', "x")]
)
async def test_client_types_are_kept_as_sent_for_interpretation(sent: str, kept: int | str) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=f'[{{"id": 1, "name": "C", "type": {sent}}}]')

    clients = await make(handler).list_clients()
    assert clients[0].type == kept


async def test_each_page_is_handed_on_as_it_lands_not_after_the_last() -> None:
    fake = PagedFinsync(count=450)
    handed: list[tuple[int, list[int]]] = []
    # What had been handed on when each page was asked for: with two pages on the wire at a
    # time, pages are handed on while later ones are still to be asked.
    handed_when_asked: dict[int, int] = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        # The first time each page is asked (page 1 is asked again at the end, to confirm).
        handed_when_asked.setdefault(int(request.url.params["page"]), len(handed))
        return fake(request)

    class Sink:
        def add(self, number: int, clients: Parsed[FinsyncClientRecord]) -> None:
            handed.append((number, [client.id for client in clients]))

    await make(handler).each_page(Sink)

    assert sorted(number for number, _ in handed) == [1, 2, 3, 4, 5]
    assert handed[0] == (1, list(range(1, 101)))
    assert dict(handed)[5] == list(range(401, 451))
    assert handed_when_asked[1] == 0
    assert handed_when_asked[5] >= 1  # page 1 at least was handed on before the last call
