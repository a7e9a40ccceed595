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
a large answer is built; concurrent requests for one answer wait for one build. A large list
is serialised in slices, so no single call holds the interpreter lock for long. Builds are
limited for the whole process (`BuildLimiter`): a few at a time, a bounded queue behind them
(then `BuildsBusyError`, a 503), and so is compressing a large kept middle; a build every
caller has left is dropped from the queue, or not serialised when it is already running.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import zstandard
from cachetools import LRUCache
from pydantic import AwareDatetime, BaseModel, TypeAdapter

from app.api.errors import BuildsBusyError
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


# Items serialised per call when a list is long: one call holds the interpreter lock
# throughout, and a 10,000-position page in one call holds it for tens of milliseconds.
_SLICE = 500
_LIST_ADAPTERS: dict[type, TypeAdapter[list[object]]] = {}


def _dump(model: BaseModel) -> bytes:
    """The model's JSON, its longest list (after `sources`) serialised in slices: the same
    bytes as `model.model_dump_json()`."""
    name, items = "", list[object]()
    for field_name, value in model:
        if field_name != "sources" and isinstance(value, list) and len(value) > len(items):
            name, items = field_name, value
    if len(items) <= _SLICE:
        return model.model_dump_json().encode()
    head = model.model_copy(update={name: []}).model_dump_json().encode()
    empty = b'"' + name.encode() + b'":[]'
    assert head.count(empty) == 1, name
    item_type = type(items[0])
    adapter = _LIST_ADAPTERS.get(item_type)
    if adapter is None:
        adapter = _LIST_ADAPTERS[item_type] = TypeAdapter(list[item_type])  # type: ignore[valid-type]
    parts = [adapter.dump_json(items[i : i + _SLICE])[1:-1] for i in range(0, len(items), _SLICE)]
    before, _, after = head.partition(empty)
    return b"".join((before, empty[:-1], b",".join(parts), b"]", after))


class AbandonedError(Exception):
    """Every caller of a build left before it was serialised: it is dropped."""


def _cut(model: BaseModel, *, generated_at: bool) -> bytes:
    body = _dump(model)
    suffix = b',"generated_at":' + _MOMENT.dump_json(EPOCH) + b"}" if generated_at else b"}"
    # The models list `sources` first and `generated_at` last: a test holds them to that.
    assert body.startswith(_PREFIX)
    assert body.endswith(suffix)
    return body[len(_PREFIX) : len(body) - len(suffix)]


class BuildLimiter:
    """At most `concurrent` answers built at a time in the process, at most `queued` more
    waiting for a place (first come, first served); past that, `BuildsBusyError`.

    A place is taken synchronously (`enter`), so the queue's bound holds however many
    requests arrive in one turn of the loop; `leave` gives it back: a running build's place
    passes to the first one waiting, a queued one's is simply dropped.
    """

    def __init__(
        self,
        concurrent: int = 2,
        queued: int = 16,
        *,
        observe: Callable[[int, int], None] | None = None,
        on_refused: Callable[[], None] | None = None,
    ) -> None:
        self.concurrent = concurrent
        self.queued = queued
        self.running = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        # Told (running, queued) after every change (the metrics' gauges).
        self._observe = observe
        self._on_refused = on_refused

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def enter(self) -> asyncio.Future[None]:
        """A place: done at once when a build may start now, else done when one is free."""
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.running < self.concurrent and not self._waiting:
            self.running += 1
            ticket.set_result(None)
        elif len(self._waiting) >= self.queued:
            if self._on_refused is not None:
                self._on_refused()
            raise BuildsBusyError
        else:
            self._waiting.append(ticket)
        self._changed()
        return ticket

    def leave(self, ticket: asyncio.Future[None]) -> None:
        if not ticket.done() or ticket.cancelled():
            # Still queued (or its wait was cancelled): its queue place goes.
            ticket.cancel()
            if ticket in self._waiting:
                self._waiting.remove(ticket)
        else:
            while self._waiting:
                waiting = self._waiting.popleft()
                if not waiting.done():
                    waiting.set_result(None)  # the place passes on: `running` is unchanged
                    break
            else:
                self.running -= 1
        self._changed()

    def _changed(self) -> None:
        if self._observe is not None:
            self._observe(self.running, len(self._waiting))


@dataclass(eq=False)
class _Building:
    """A build under way: its place among the builds, its task, and who waits for it."""

    key: Hashable
    ticket: asyncio.Future[None]
    abandoned: threading.Event = field(default_factory=threading.Event)
    waiters: int = 0
    started: bool = False
    task: asyncio.Task[Prebuilt] = field(init=False)


# Filtered sets kept per data state (each holds references into the snapshot, no copies).
_DERIVED_PER_STATE = 16


class AnswerCache:
    """Kept answers by (route, data state, normalised query); least recently used go first."""

    def __init__(
        self,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        on_build: Callable[[str], None] | None = None,
        release: Callable[[object], None] | None = None,
        limiter: BuildLimiter | None = None,
        on_abandoned: Callable[[str], None] | None = None,
    ) -> None:
        # Bounded by bytes, not count: one answer at 50,000 clients is half a megabyte (twice
        # that with its compressed forms, counted in).
        self._kept: LRUCache[Hashable, Prebuilt] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda kept: 2 * len(kept.middle) + 256
        )
        self._building: dict[Hashable, _Building] = {}
        self.limiter = limiter if limiter is not None else BuildLimiter()
        self._on_abandoned = on_abandoned
        self._derived: dict[
            tuple[str, tuple[Hashable, ...]], tuple[Hashable, LRUCache[Hashable, object]]
        ] = {}
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

    def derived(
        self, name: str, state: tuple[Hashable, ...], key: Hashable, build: Callable[[], T]
    ) -> T:
        """A value derived from one data state and part of a question (a filter, without
        the page), kept for the latest state of each set of connections only, a few per
        state: every page of one filtered set then costs a slice, not a filter and totals."""
        connections = tuple(entry[0] if isinstance(entry, tuple) else entry for entry in state)
        with self._shared_lock:
            held = self._derived.get((name, connections))
            if held is not None and held[0] == state and key in held[1]:
                found: T = held[1][key]  # type: ignore[assignment]
                return found
        value = build()
        with self._shared_lock:
            held = self._derived.get((name, connections))
            if held is None or held[0] != state:
                # A new state: what the old one derived goes with it.
                held = (state, LRUCache(maxsize=_DERIVED_PER_STATE))
                self._derived[name, connections] = held
            held[1][key] = value
        return value

    async def get(
        self, question: Question, state: tuple[Hashable, ...], build: Callable[[], BaseModel]
    ) -> Prebuilt:
        key = (question.route, state, question.query)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        building = self._building.get(key)
        if building is None or building.abandoned.is_set():
            # A place now, or BuildsBusyError (a 503) before anything is started. A build
            # every caller left is never joined: it will not be kept; this one replaces it.
            building = _Building(key, self.limiter.enter())
            building.task = asyncio.ensure_future(self._build(question, build, building))
            self._building[key] = building
            building.task.add_done_callback(lambda done: self._done_building(key, building))
        building.waiters += 1
        try:
            # Shielded: a caller that goes away does not cancel the build the others wait for.
            return await asyncio.shield(building.task)
        finally:
            building.waiters -= 1
            if building.waiters == 0 and not building.task.done():
                self._abandon(question.route, building)

    def _abandon(self, route: str, building: _Building) -> None:
        """Every caller left: a queued build gives its place up; a running one finishes the
        work in hand but is not serialised (a thread cannot be stopped from outside)."""
        if self._on_abandoned is not None:
            self._on_abandoned(route)
        building.abandoned.set()
        if not building.started:
            building.task.cancel()

    def _done_building(self, key: Hashable, building: _Building) -> None:
        if self._building.get(key) is building:
            del self._building[key]
        # Here, not in the build: a build cancelled before it ever ran gives its place back too.
        self.limiter.leave(building.ticket)
        if not building.task.cancelled():
            building.task.exception()  # read, so a build every caller left is never logged

    async def _build(
        self, question: Question, build: Callable[[], BaseModel], building: _Building
    ) -> Prebuilt:
        await building.ticket  # cancelled, with this task, when every caller left first
        building.started = True
        self.builds += 1
        if self._on_build is not None:
            self._on_build(question.route)

        def work() -> bytes:
            model = build()
            if building.abandoned.is_set():
                raise AbandonedError
            return _cut(model, generated_at=question.generated_at)

        middle = await asyncio.to_thread(work)
        kept = Prebuilt(middle, question.generated_at)
        self._kept[building.key] = kept
        return kept

    async def encoded(self, prebuilt: Prebuilt, encoding: str) -> Encoded:
        """The kept middle compressed for `encoding`, once per answer, in a worker thread; a
        large one in a build place (compressing it costs about what building it did)."""
        pending = prebuilt.encoded.get(encoding)
        if pending is None:
            ticket = None
            if len(prebuilt.middle) > COMPRESSED_IN_A_PLACE_BYTES:
                ticket = self.limiter.enter()  # BuildsBusyError: nothing kept, asked anew
            pending = asyncio.ensure_future(_compressed(prebuilt.middle, encoding, ticket))
            prebuilt.encoded[encoding] = pending
            pending.add_done_callback(
                lambda done: self._done_compressing(prebuilt, encoding, ticket, done)
            )
        return await asyncio.shield(pending)

    def _done_compressing(
        self,
        prebuilt: Prebuilt,
        encoding: str,
        ticket: asyncio.Future[None] | None,
        done: asyncio.Future[Encoded],
    ) -> None:
        if ticket is not None:
            self.limiter.leave(ticket)
        if (done.cancelled() or done.exception() is not None) and prebuilt.encoded.get(
            encoding
        ) is done:
            del prebuilt.encoded[encoding]  # a failure is not kept: the next asker tries again


# A kept middle larger than this is compressed in a build place (a 50,000-client page is
# about 500 KB; a smaller one takes well under a millisecond).
COMPRESSED_IN_A_PLACE_BYTES = 256 * 1024


async def _compressed(middle: bytes, encoding: str, ticket: asyncio.Future[None] | None) -> Encoded:
    if ticket is not None:
        await ticket
    return await asyncio.to_thread(_encode, middle, encoding)


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
