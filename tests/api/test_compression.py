"""Bodies over about 1 KB are compressed for callers that accept it: zstd first, else gzip."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard
from starlette.testclient import TestClient


def raw(client: TestClient, path: str, accept_encoding: str) -> tuple[dict[str, str], bytes]:
    """The answer as sent, not decoded by the client."""
    with client.stream("GET", path, headers={"Accept-Encoding": accept_encoding}) as response:
        return dict(response.headers), b"".join(response.iter_raw())


@pytest.mark.parametrize(
    ("accepted", "encoding"),
    [("gzip", "gzip"), ("gzip, zstd", "zstd"), ("zstd;q=0, gzip", "gzip"), ("*", "zstd")],
)
def test_a_large_answer_is_compressed_as_the_caller_accepts(
    client: TestClient, accepted: str, encoding: str
) -> None:
    plain = client.get("/positions", headers={"Accept-Encoding": "identity"})
    headers, body = raw(client, "/positions", accepted)
    assert headers["content-encoding"] == encoding
    assert "Accept-Encoding" in headers["vary"]
    assert int(headers["content-length"]) == len(body) < len(plain.content)
    decoded = (
        gzip.decompress(body)
        if encoding == "gzip"
        else zstandard.ZstdDecompressor().decompress(body, max_output_size=10**8)
    )
    # The same answer, volatile members aside.
    assert json.loads(decoded)["positions"] == plain.json()["positions"]


def test_small_answers_and_callers_that_accept_nothing_get_plain_bytes(
    client: TestClient,
) -> None:
    headers, body = raw(client, "/healthz", "gzip")
    assert "content-encoding" not in headers
    assert json.loads(body) == {"status": "ok"}
    headers, _ = raw(client, "/positions", "identity")
    assert "content-encoding" not in headers
    assert "Accept-Encoding" in headers["vary"]


def test_an_encoded_body_never_carries_a_strong_etag(client: TestClient) -> None:
    plain, _ = raw(client, "/counterparties/finqware:ing-ops", "identity")
    encoded, _ = raw(client, "/counterparties/finqware:ing-ops", "gzip")
    assert not plain["etag"].startswith("W/")
    assert encoded["etag"] == "W/" + plain["etag"]
