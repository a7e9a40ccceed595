"""Compressed answers spliced around a middle compressed once: what a caller decodes is the
answer byte for byte, whatever the lengths, with the usual one-shot decoders."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from datetime import UTC, datetime

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from app.api.answers import AnswerCache, Prebuilt, splice, splice_encoded
from app.domain.models import SourceInfo, SourceStatus
from tests.api.test_compression import raw

MOMENT = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def sources(count: int) -> list[SourceInfo]:
    return [
        SourceInfo(
            source=f"finqware:bank-{n}", status=SourceStatus.ok, fetched_at=MOMENT, age_seconds=n
        )
        for n in range(count)
    ]


def encoded_answer(middle: bytes, encoding: str, source_count: int) -> tuple[bytes, bytes]:
    prebuilt = Prebuilt(middle, ends_with_generated_at=True)

    async def both() -> tuple[bytes, bytes]:
        encoded = await AnswerCache().encoded(prebuilt, encoding)
        plain = splice(prebuilt, sources(source_count), MOMENT)
        return plain, splice_encoded(prebuilt, encoded, encoding, sources(source_count), MOMENT)

    return asyncio.run(both())


def decode(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)  # checks the CRC-32 and the length too
    return zstandard.ZstdDecompressor().decompress(body, max_output_size=10**9)


@settings(max_examples=40, deadline=None)
@given(
    middle=st.binary(min_size=0, max_size=5000),
    encoding=st.sampled_from(["gzip", "zstd"]),
    source_count=st.integers(min_value=0, max_value=3),
)
def test_any_middle_decodes_to_the_plain_answer(
    middle: bytes, encoding: str, source_count: int
) -> None:
    plain, body = encoded_answer(middle, encoding, source_count)
    assert decode(body, encoding) == plain


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_a_large_middle_with_many_blocks_decodes_whole_and_by_stream(encoding: str) -> None:
    # About 3 MB of varied JSON: several zstd blocks, a long CRC shift, and more sources
    # than one raw block of 128 KiB holds.
    rows = [
        {"id": n, "name": f"Proveedor {n * 7919 % 100003}", "amount": f"{n}.25"}
        for n in range(60_000)
    ]
    middle = json.dumps(rows).encode()
    plain, body = encoded_answer(middle, encoding, source_count=2000)
    assert len(body) < len(plain) / 3
    assert decode(body, encoding) == plain
    if encoding == "gzip":
        stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pieces = [stream.decompress(body[i : i + 4096]) for i in range(0, len(body), 4096)]
        assert b"".join(pieces) + stream.flush() == plain
        assert stream.eof
        assert stream.unused_data == b""
    else:
        reader = zstandard.ZstdDecompressor().decompressobj()
        assert reader.decompress(body) == plain


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_every_request_gets_its_own_volatile_members_around_one_compression(
    client: TestClient, encoding: str
) -> None:
    first_headers, first = raw(client, "/positions", encoding)
    second_headers, second = raw(client, "/positions", encoding)
    assert first_headers["content-encoding"] == second_headers["content-encoding"] == encoding
    assert first_headers["etag"] == second_headers["etag"]
    one, two = json.loads(decode(first, encoding)), json.loads(decode(second, encoding))
    assert one["generated_at"] != two["generated_at"]
    assert one["positions"] == two["positions"]
    answers: AnswerCache = client.app_state["services"].answers
    assert answers.builds == 1
