"""Content negotiation and encoding: zstd or gzip as the caller accepts, for JSON and text
bodies over about 1 KB, with `Vary: Accept-Encoding` on every answer."""

from __future__ import annotations

import gzip
from decimal import Decimal
from functools import lru_cache

import zstandard
from starlette.types import Message, Send

from app.api.edge.base import is_stream

# Bodies smaller than this are sent as they are: compressing them saves nothing worth it.
MIN_COMPRESSED_BYTES = 1024
_COMPRESSIBLE = (b"application/json", b"application/problem+json", b"text/")


# Callers send a handful of distinct Accept-Encoding values: each is parsed once.
@lru_cache(maxsize=256)
def accepted_encoding(header_value: str) -> str | None:
    """The encoding to answer with, from an Accept-Encoding value: zstd when the caller
    accepts it, else gzip, else none."""
    offered: dict[str, Decimal] = {}
    for part in header_value.split(","):
        name, _, params = part.strip().partition(";")
        quality = Decimal(1)
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = Decimal(value.strip())
                except ArithmeticError:
                    quality = Decimal(0)
                if not quality.is_finite():
                    quality = Decimal(0)
        if name:
            offered[name.strip().lower()] = quality
    for encoding in ("zstd", "gzip"):
        if offered.get(encoding, offered.get("*", Decimal(0))) > 0:
            return encoding
    return None


def compress(body: bytes, encoding: str) -> bytes:
    """`body` in `encoding` (zstd or gzip)."""
    # The fastest levels: most of the size goes at level 1, and this runs per answer.
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=1).compress(body)
    return gzip.compress(body, compresslevel=1, mtime=0)


def negotiated(send: Send, encoding: str | None) -> Send:
    """A `send` that buffers an answer and sends it encoded as `encoding` when worth it, with
    `Vary: Accept-Encoding`; an event stream passes as it is, neither buffered nor
    compressed."""
    start: Message | None = None
    chunks: list[bytes] = []
    streaming = False

    async def buffered(message: Message) -> None:
        nonlocal start, streaming
        if message["type"] == "http.response.start":
            if is_stream(message):
                streaming = True
                await send(message)
                return
            start = message
            return
        if streaming or message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, body = encoded(start, b"".join(chunks), encoding)
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return buffered


def encoded(start: Message, body: bytes, encoding: str | None) -> tuple[Message, bytes]:
    """An answer's start and body as sent to a caller accepting `encoding`: compressed when
    it is JSON or text of about 1 KB or more and not encoded already (its ETag then made
    weak: it names the data, not these bytes); `Vary: Accept-Encoding` always."""
    headers = [(n, v) for n, v in start.get("headers", []) if n != b"vary"]
    vary = [v for n, v in start.get("headers", []) if n == b"vary"]
    headers.append((b"vary", b", ".join([*vary, b"Accept-Encoding"])))
    content_type = next((v for n, v in headers if n == b"content-type"), b"")
    if (
        encoding is not None
        and len(body) >= MIN_COMPRESSED_BYTES
        and content_type.startswith(_COMPRESSIBLE)
        and not any(n == b"content-encoding" for n, _ in headers)
    ):
        body = compress(body, encoding)
        headers = [
            (n, b"W/" + v if n == b"etag" and not v.startswith(b"W/") else v)
            for n, v in headers
            if n != b"content-length"
        ]
        headers += [
            (b"content-encoding", encoding.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
    return {**start, "headers": headers}, body
