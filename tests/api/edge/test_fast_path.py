"""The fast path at the edge answers exactly as FastAPI would: the same random requests sent
through an app with the fast path and through one without it, over the same services (one
lifespan, so one data state and one answer cache), give the same status, headers (but
`Date` and the request id) and bytes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from app.api.edge.fast import FastPath
from app.main import create_app
from app.services.treasury import Connection, Treasury
from app.settings import Settings
from tests.support.keys import READ_KEY, WRITE_KEY, reader_and_writer, sha256
from tests.support.simulators import Simulators

# Sent by the test to pick the app without the fast path; taken off before either app sees it.
_SLOW = b"x-test-slow"
WRITE_ONLY_KEY = "write-only-key-0123456789"


def _settings() -> Settings:
    keys: dict[str, Any] = {
        **reader_and_writer(),
        "write_only": {"sha256": sha256(WRITE_ONLY_KEY), "scopes": ["write"]},
    }
    # Data lifetimes of a day: no reload lands between the two answers compared.
    return Settings(
        _env_file=None,
        sandbox=True,
        api_keys=keys,
        finsync_ttl_seconds=86_400,
        finqware_ttl_seconds=86_400,
    )


class Both:
    """One ASGI app over two: the one with the fast path runs the lifespan; a request marked
    `x-test-slow` goes to the one without it, with the same lifespan state."""

    def __init__(self, fast: FastAPI, slow: FastAPI) -> None:
        self.fast, self.slow = fast, slow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fast(scope, receive, send)
            return
        headers = scope["headers"]
        target = self.slow if any(name == _SLOW for name, _ in headers) else self.fast
        scope = {**scope, "headers": [(n, v) for n, v in headers if n != _SLOW]}
        await target(scope, receive, send)


@pytest.fixture(scope="module")
def both() -> Iterator[tuple[TestClient, FastPath]]:
    simulators = Simulators.fresh()
    fast = create_app(_settings(), transport=simulators.transport())
    slow = create_app(_settings(), transport=simulators.transport(), fast_path=False)
    with TestClient(Both(fast, slow)) as client:
        # Only what each request sends, nothing of httpx's own (Accept-Encoding above all).
        client.headers.clear()
        yield client, fast.state.fast_path


# Weighted towards the routes the fast path serves, with valid parameters and keys, so that
# about half the requests compared are answered there.
_ROUTES = [
    *["/positions"] * 16,
    *["/counterparties"] * 12,
    "/healthz",
    "/rates",
    "/positions/",
    "/counterparties/finsync:1",
    "/nowhere",
    "/openapi.json",
]
_VALID = st.sampled_from(
    [
        "page=1",
        "page=2",
        "page_size=1",
        "page_size=2",
        "page_size=200",
        "currency=USD",
        "source=finsync",
        "source=finqware",
        "kind=internal",
        "include_zero=true",
    ]
)
_PARAMS = st.sampled_from(
    [
        "page=1",
        "page=2",
        "page=0",
        "page=x",
        "page_size=1",
        "page_size=2",
        "page_size=200",
        "page_size=10001",
        "currency=USD",
        "currency=ars",
        "currency=U$D",
        "source=finsync",
        "source=finqware",
        "source=nope",
        "kind=internal",
        "kind=external",
        "include_zero=true",
        "include_zero=maybe",
        "q=a",
        "q=",
        "side=asset",
        "meaning=balance",
        "unknown=1",
        "page=%31",
        "page=%",
        "page=%C3%28",
    ]
)
_QUERY = st.one_of(
    st.lists(_VALID, max_size=2).map("&".join),
    st.lists(_VALID, max_size=2).map("&".join),
    st.lists(
        st.one_of(_PARAMS, st.text(max_size=8).map(lambda t: "q=" + quote(t))), max_size=3
    ).map("&".join),
)
_ENCODINGS = st.sampled_from(
    [None, "gzip", "zstd", "gzip, zstd", "br", "gzip;q=0", "*", "identity", "zstd;q=0.5, gzip"]
)
_AUTHORIZATION = st.sampled_from(
    [
        None,
        *[f"Bearer {READ_KEY}"] * 16,
        f"bearer {WRITE_KEY}",
        f"Bearer {WRITE_ONLY_KEY}",
        "Bearer not-a-key",
        f"Basic {READ_KEY}",
        "Bearer",
    ]
)
# "current": the ETag the same request gets without If-None-Match.
_IF_NONE_MATCH = st.sampled_from([*[None] * 4, "current", "*", '"nope"', 'W/"nope", current'])
_CACHE_CONTROL = st.sampled_from([*[None] * 8, "no-cache", "max-age=0", "max-age=60"])
# A connection told to load again (as a write's event or a refetch does) once FastAPI has
# kept the answer, before the two requests compared: the data state the fast path reused
# is no longer current.
_RELOADED = st.sampled_from([*[None] * 6, "finsync", "finqware:bt-main", "finqware:ing-ops"])


def _headers(**values: str | None) -> dict[str, str]:
    return {name.replace("_", "-"): value for name, value in values.items() if value is not None}


def _reload(client: TestClient, key: str) -> None:
    """Connection `key` loads again at its next read (on the app's event loop)."""
    treasury: Treasury = client.app_state["services"].treasury
    connection = treasury.connection(key)
    assert connection is not None
    assert client.portal is not None
    client.portal.call(_invalidated, connection)


async def _invalidated(connection: Connection) -> None:
    connection.invalidate()


def _exchange(
    client: TestClient, method: str, url: str, headers: dict[str, str], *, slow: bool
) -> tuple[int, list[tuple[str, str]], bytes]:
    sent = {**headers, _SLOW.decode(): "1"} if slow else headers
    with client.stream(method, url, headers=sent) as response:
        body = b"".join(response.iter_raw())  # as sent: never decoded
        kept = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name not in ("date", "x-request-id")
        ]
        return response.status_code, kept, body


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "GET", "HEAD"]),
    route=st.sampled_from(_ROUTES),
    query=_QUERY,
    accept_encoding=_ENCODINGS,
    authorization=_AUTHORIZATION,
    if_none_match=_IF_NONE_MATCH,
    cache_control=_CACHE_CONTROL,
    reloaded=_RELOADED,
)
def test_the_fast_path_answers_every_request_as_fastapi_does(
    both: tuple[TestClient, FastPath],
    method: str,
    route: str,
    query: str,
    accept_encoding: str | None,
    authorization: str | None,
    if_none_match: str | None,
    cache_control: str | None,
    reloaded: str | None,
) -> None:
    client, fast_path = both
    url = f"{route}?{query}" if query else route
    plain = _headers(accept_encoding=accept_encoding, authorization=authorization)
    if if_none_match is not None and "current" in if_none_match:
        # FastAPI's first sight of the question: its ETag, and the answer is kept.
        _, seen, _ = _exchange(client, "GET", url, plain, slow=True)
        etag = dict(seen).get("etag", '"none"')
        if_none_match = if_none_match.replace("current", etag)
    headers = {
        **plain,
        **_headers(if_none_match=if_none_match, cache_control=cache_control),
    }
    # FastAPI's first sight keeps the answer; the fast path may then answer the same request.
    _exchange(client, method, url, headers, slow=True)
    if reloaded is not None:
        event("a connection reloaded before the requests compared")
        _reload(client, reloaded)
    for _ in range(2):
        before = fast_path.answered
        fast = _exchange(client, method, url, headers, slow=False)
        event("answered by the fast path" if fast_path.answered > before else "by FastAPI")
        slow = _exchange(client, method, url, headers, slow=True)
        if dict(fast[1]).get("cache-control") == dict(slow[1]).get("cache-control"):
            break
        # `max-age` counts whole seconds down: the two answers straddled a second. Once
        # more, which cannot straddle again within the next second.
    assert fast == slow


def test_a_kept_answer_is_served_by_the_fast_path(both: tuple[TestClient, FastPath]) -> None:
    client, fast_path = both
    headers = {"Authorization": f"Bearer {READ_KEY}", "Accept-Encoding": "gzip"}
    first = client.get("/positions?page_size=2", headers=headers)
    before = fast_path.answered
    again = client.get("/positions?page_size=2", headers=headers)
    conditional = client.get(
        "/positions?page_size=2", headers={**headers, "If-None-Match": again.headers["etag"]}
    )
    assert (first.status_code, again.status_code, conditional.status_code) == (200, 200, 304)
    assert fast_path.answered == before + 2
    assert again.content == first.content


def test_the_fast_path_leaves_a_refetch_and_a_caller_without_read_to_fastapi(
    both: tuple[TestClient, FastPath],
) -> None:
    client, fast_path = both
    reader = {"Authorization": f"Bearer {READ_KEY}"}
    assert client.get("/counterparties?page_size=3", headers=reader).status_code == 200
    before = fast_path.answered
    refetch = client.get(
        "/counterparties?page_size=3", headers={**reader, "Cache-Control": "no-cache"}
    )
    no_read = client.get(
        "/counterparties?page_size=3", headers={"Authorization": f"Bearer {WRITE_ONLY_KEY}"}
    )
    nobody = client.get("/counterparties?page_size=3")
    assert (refetch.status_code, no_read.status_code, nobody.status_code) == (200, 403, 401)
    assert fast_path.answered == before


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Accept-Encoding": "gzip"}, {"Authorization": "Bearer not-a-key"}, {"X-Request-ID": "r"}],
)
def test_the_health_probe_is_answered_at_the_edge_as_fastapi_answers_it(
    both: tuple[TestClient, FastPath], method: str, headers: dict[str, str]
) -> None:
    client, fast_path = both
    _exchange(client, "GET", "/healthz", {}, slow=False)  # its route, learnt once
    before = fast_path.answered
    fast = _exchange(client, method, "/healthz?x=1", headers, slow=False)
    assert fast_path.answered == before + 1
    assert fast == _exchange(client, method, "/healthz?x=1", headers, slow=True)
    assert fast[0] == 200


def test_the_health_probe_with_a_body_too_large_is_fastapis(
    both: tuple[TestClient, FastPath],
) -> None:
    client, fast_path = both
    before = fast_path.answered
    refused = client.get("/healthz", headers={"Content-Length": "100000"})
    assert refused.status_code == 413
    assert fast_path.answered == before


@pytest.mark.parametrize("url", ["/positions?page_size=2", "/healthz"])
@pytest.mark.parametrize("sent_id", [None, "req-1"])
def test_the_fast_path_sends_the_request_id_where_fastapi_s_answer_has_it(
    both: tuple[TestClient, FastPath], url: str, sent_id: str | None
) -> None:
    # The id is added by the edge to both, once and last; the fast path adds it itself.
    client, fast_path = both
    headers = {"Authorization": f"Bearer {READ_KEY}", "Accept-Encoding": "gzip"}
    if sent_id is not None:
        headers["X-Request-ID"] = sent_id
    client.get(url, headers=headers)  # kept (and /healthz's route learnt) by FastAPI
    answers = []
    for slow in (False, True):
        sent = {**headers, _SLOW.decode(): "1"} if slow else headers
        before = fast_path.answered
        response = client.get(url, headers=sent)
        assert fast_path.answered == before + (0 if slow else 1)
        names = [name for name, _ in response.headers.multi_items() if name != "date"]
        ids = response.headers.get_list("x-request-id")
        answers.append((names, len(ids), sent_id in ids if sent_id else True))
    assert answers[0] == answers[1]
    assert answers[0][0][-1] == "x-request-id"
    assert answers[0][1:] == (1, True)
