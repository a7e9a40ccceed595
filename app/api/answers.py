"""Aggregated answers as bytes, built once per data version and question, spliced per request.

An answer's body is its model's JSON. Almost all of it (positions, totals, items, warnings)
changes only when a connection's data or state does, so it is built once per
(route, data state, normalised query) and kept in a bounded cache; only the volatile
members (`sources` with their `age_seconds`, and `generated_at`) are written per request,
around the kept bytes. The ETag names the data state and the question, so a 304 costs no
serialisation at all. A test keeps the spliced bytes identical to a plain model dump.

Compressed answers are spliced the same way: the kept middle is compressed once per data
version and encoding, and each request compresses only its few volatile bytes around it.
- zstd: one frame whose blocks are the volatile bytes as raw blocks (which leave the
  decoder's tables and repeat offsets as they are) around the kept middle's compressed
  blocks (whose offsets only ever reach back inside the middle).
- gzip: one member whose deflate stream is three runs of blocks, each run ended by a full
  flush (byte-aligned, no reference back into the run before it), and whose CRC-32 is
  combined from the kept middle's CRC without reading the middle again.

Builds run in a worker thread, so the event loop keeps answering (`/healthz` included) while
a large answer is built; concurrent requests for one answer wait for one build.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import threading
import zlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import zstandard
from cachetools import LRUCache
from pydantic import AwareDatetime, BaseModel, TypeAdapter

from app.domain.models import SourceInfo

T = TypeVar("T")

_SOURCES = TypeAdapter(list[SourceInfo])
_MOMENT = TypeAdapter(AwareDatetime)
# Stand-ins for the volatile members while the kept part is built; cut off right after.
NO_SOURCES: tuple[SourceInfo, ...] = ()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PREFIX = b'{"sources":[],'

ENCODINGS = ("zstd", "gzip")
# The kept middle is compressed once per data version: worth the default levels. The few
# volatile bytes around it are compressed per request, at the fastest.
_KEPT_LEVEL = {"zstd": 3, "gzip": 6}


@dataclass(frozen=True)
class Question:
    """What an answer is about: its route and its normalised query (hashable, and written
    the same way every time it is asked)."""

    route: str
    query: Hashable
    generated_at: bool


@dataclass(frozen=True)
class Encoded:
    """The kept middle of an answer compressed once, with what splicing needs."""

    body: bytes  # gzip: its deflate run; zstd: the frame's header
    blocks: bytes = b""  # zstd: the middle's compressed blocks, none of them marked last
    crc: int = 0  # gzip: CRC-32 of the uncompressed middle
    # gzip: the linear map that carries a CRC-32 across the middle's length (32 columns).
    shift: tuple[int, ...] = ()


@dataclass(frozen=True)
class Prebuilt:
    """The stable middle of an answer's JSON (its validator is `etag_of` its question), and
    its compressed forms as they are first asked for."""

    middle: bytes
    ends_with_generated_at: bool
    encoded: dict[str, asyncio.Future[Encoded]] = field(default_factory=dict, compare=False)


def _cut(model: BaseModel, *, generated_at: bool) -> bytes:
    body = model.model_dump_json().encode()
    suffix = b',"generated_at":' + _MOMENT.dump_json(EPOCH) + b"}" if generated_at else b"}"
    # The models list `sources` first and `generated_at` last: a test holds them to that.
    assert body.startswith(_PREFIX)
    assert body.endswith(suffix)
    return body[len(_PREFIX) : len(body) - len(suffix)]


class AnswerCache:
    """Kept answers by (route, data state, normalised query); least recently used go first."""

    def __init__(
        self,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        on_build: Callable[[str], None] | None = None,
        release: Callable[[object], None] | None = None,
    ) -> None:
        # Bounded by bytes, not count: one answer at 50,000 clients is half a megabyte (twice
        # that with its compressed forms, counted in).
        self._kept: LRUCache[Hashable, Prebuilt] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda kept: 2 * len(kept.middle) + 256
        )
        self._building: dict[Hashable, asyncio.Future[Prebuilt]] = {}
        # What several questions share (every position, sorted) is kept for the latest data
        # state of each set of connections only: it holds the snapshot it was built from,
        # which must not outlive its replacement. Builds run in worker threads, so this one
        # is shared under a lock.
        self._shared: dict[tuple[str, tuple[Hashable, ...]], tuple[Hashable, object]] = {}
        self._shared_lock = threading.Lock()
        self._on_build = on_build
        # Takes a replaced shared value (the server's reaper), else it is dropped here.
        self._release = release
        self.builds = 0

    def shared(self, name: str, state: tuple[Hashable, ...], build: Callable[[], T]) -> T:
        """A value derived from one data state, built once for every question about it
        (`state` is `Gathered.state`: one entry per connection, its key first)."""
        connections = tuple(entry[0] if isinstance(entry, tuple) else entry for entry in state)
        with self._shared_lock:
            held = self._shared.get((name, connections))
            if held is None or held[0] != state:
                replaced, held = held, (state, build())
                self._shared[name, connections] = held
                if replaced is not None and self._release is not None:
                    self._release(replaced[1])
                del replaced
            found: T = held[1]  # type: ignore[assignment]
            return found

    async def get(
        self, question: Question, state: tuple[Hashable, ...], build: Callable[[], BaseModel]
    ) -> Prebuilt:
        key = (question.route, state, question.query)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        pending = self._building.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._build(key, question, build))
            self._building[key] = pending
            pending.add_done_callback(lambda done: self._done_building(key, done))
        # Shielded: a caller that goes away does not cancel the build the others wait for.
        return await asyncio.shield(pending)

    def _done_building(self, key: Hashable, done: asyncio.Future[Prebuilt]) -> None:
        self._building.pop(key, None)
        if not done.cancelled():
            done.exception()  # read, so a build every caller left is never logged as lost

    async def _build(
        self, key: Hashable, question: Question, build: Callable[[], BaseModel]
    ) -> Prebuilt:
        self.builds += 1
        if self._on_build is not None:
            self._on_build(question.route)
        middle = await asyncio.to_thread(lambda: _cut(build(), generated_at=question.generated_at))
        kept = Prebuilt(middle, question.generated_at)
        self._kept[key] = kept
        return kept

    @staticmethod
    async def encoded(prebuilt: Prebuilt, encoding: str) -> Encoded:
        """The kept middle compressed for `encoding`, once per answer (in a worker thread)."""
        pending = prebuilt.encoded.get(encoding)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(_encode, prebuilt.middle, encoding))
            prebuilt.encoded[encoding] = pending
        return await asyncio.shield(pending)


def etag_of(question: Question, state: tuple[Hashable, ...]) -> str:
    """The validator of an answer: its data state and its question, never its bytes (weak:
    the volatile members differ between two answers with one ETag)."""
    key = (question.route, state, question.query)
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return f'W/"{digest}"'


def _volatile(
    prebuilt: Prebuilt, sources: Sequence[SourceInfo], generated_at: datetime
) -> tuple[bytes, bytes]:
    """What goes before and after the kept middle in this request's answer."""
    before = b'{"sources":' + _SOURCES.dump_json(list(sources)) + b","
    after = b"}"
    if prebuilt.ends_with_generated_at:
        after = b',"generated_at":' + _MOMENT.dump_json(generated_at) + b"}"
    return before, after


def splice(prebuilt: Prebuilt, sources: Sequence[SourceInfo], generated_at: datetime) -> bytes:
    """The whole answer: this request's sources and time around the kept bytes."""
    before, after = _volatile(prebuilt, sources, generated_at)
    return b"".join((before, prebuilt.middle, after))


def splice_encoded(
    prebuilt: Prebuilt,
    encoded: Encoded,
    encoding: str,
    sources: Sequence[SourceInfo],
    generated_at: datetime,
) -> bytes:
    """The whole answer compressed for `encoding`, around the once-compressed middle."""
    before, after = _volatile(prebuilt, sources, generated_at)
    if encoding == "zstd":
        return b"".join(
            (
                encoded.body,
                _raw_blocks(before, last=False),
                encoded.blocks,
                _raw_blocks(after, last=True),
            )
        )
    crc = _crc_across(zlib.crc32(before), encoded.shift) ^ encoded.crc
    crc = zlib.crc32(after, crc)
    size = len(before) + len(prebuilt.middle) + len(after)
    return b"".join(
        (
            _GZIP_HEADER,
            _deflate(before, zlib.Z_FULL_FLUSH),
            encoded.body,
            _deflate(after, zlib.Z_FINISH),
            struct.pack("<II", crc, size & 0xFFFFFFFF),
        )
    )


# A gzip member header: deflate, no flags, no time, fastest/unknown, unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _deflate(data: bytes, mode: int, level: int = 1) -> bytes:
    """A raw deflate run of `data`, ended by a full flush (more runs follow) or the end."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(mode)


def _encode(middle: bytes, encoding: str) -> Encoded:
    level = _KEPT_LEVEL[encoding]
    if encoding == "zstd":
        return _zstd_blocks(middle, level)
    return Encoded(
        _deflate(middle, zlib.Z_FULL_FLUSH, level),
        crc=zlib.crc32(middle),
        shift=_crc_shift(len(middle)),
    )


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_RAW, _RLE = 0, 1
# Raw blocks hold at most 128 KiB each.
_MAX_BLOCK = 128 * 1024


def _zstd_blocks(middle: bytes, level: int) -> Encoded:
    """The middle compressed as one zstd frame, split into its header (with a window, not a
    content size: the spliced frame is longer) and its blocks, the last one's mark cleared."""
    frame = zstandard.ZstdCompressor(
        level=level, write_content_size=False, write_checksum=False
    ).compress(middle)
    descriptor = frame[4]
    # No content size, no checksum, no dictionary, not single-segment: a window byte follows.
    assert frame.startswith(_ZSTD_MAGIC)
    assert descriptor == 0, descriptor
    header, position = frame[:6], 6
    blocks = bytearray()
    while position < len(frame):
        (word,) = struct.unpack("<I", frame[position : position + 3] + b"\0")
        kind, size = (word >> 1) & 3, word >> 3
        length = 1 if kind == _RLE else size
        blocks += struct.pack("<I", word & ~1)[:3] + frame[position + 3 : position + 3 + length]
        position += 3 + length
    return Encoded(header, blocks=bytes(blocks))


def _raw_blocks(data: bytes, *, last: bool) -> bytes:
    parts = []
    chunks = [data[i : i + _MAX_BLOCK] for i in range(0, len(data), _MAX_BLOCK)] or [b""]
    for number, chunk in enumerate(chunks):
        final = last and number == len(chunks) - 1
        word = (len(chunk) << 3) | (_RAW << 1) | int(final)
        parts.append(struct.pack("<I", word)[:3] + chunk)
    return b"".join(parts)


# CRC-32 over A then B, from crc(A) and crc(B) alone: crc(A+B) = L(crc(A)) ^ crc(B), where L
# is linear over GF(2) and depends only on len(B). L is kept as its 32 columns, built by
# squaring the one-zero-byte map, so it costs about 50 small matrix products whatever len(B).


def _crc_across(crc: int, columns: tuple[int, ...]) -> int:
    result = 0
    bit = 0
    while crc:
        if crc & 1:
            result ^= columns[bit]
        crc >>= 1
        bit += 1
    return result


def _compose(outer: tuple[int, ...], inner: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(_crc_across(column, outer) for column in inner)


_ONE_ZERO_BYTE = tuple(zlib.crc32(b"\0", 1 << bit) ^ zlib.crc32(b"\0", 0) for bit in range(32))
_IDENTITY = tuple(1 << bit for bit in range(32))


def _crc_shift(length: int) -> tuple[int, ...]:
    result, power = _IDENTITY, _ONE_ZERO_BYTE
    while length:
        if length & 1:
            result = _compose(power, result)
        length >>= 1
        if length:
            power = _compose(power, power)
    return result
