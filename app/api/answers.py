"""Aggregated answers as whole bytes, built once per data state and question.

An aggregated answer's body depends only on the data state of the connections it needs and on
the normalised question (same data, same bytes), so it is built once per `AnswerKey`
(route, data state, normalised query), kept whole in a bounded cache (least recently used go
first), and served as those bytes to every caller asking it again. Each encoding a caller
accepts (zstd, gzip) is compressed once, whole, by the library, the first time it is asked
for. The ETag names the key, never the bytes (`etag_of`): a matching If-None-Match is a 304
that builds and reads nothing.

Builds run in a worker thread, so the event loop keeps answering (`/healthz` included) while
a large answer is built; concurrent requests for one answer wait for one build. A large list
is serialised in slices, so no single call holds the interpreter lock for long. Builds are
limited for the whole process (`BuildLimiter`): a few at a time, a bounded queue behind them
(then `BuildsBusyError`, a 503), and so is compressing a large answer; a build every caller
has left is dropped from the queue, or not serialised when it is already running.

While the next answer builds, the previous one serves. After a reload, the question's last
kept answer (`AnswerCache.previous`) may be sent while the answer for the new data state is
built behind it (`AnswerCache.build_behind`), but only when its bytes are still true now
(`app.services.treasury.still_true`, decided in `app.api.caching.answer_json`): every
connection it shows `ok` is unchanged, and what changed since is new data of a connection it
already shows `stale` or `unavailable`, with its `fetched_at`. That is the contract's "never
silently wrong": it is a consistent picture of one earlier moment that says how old it is,
as a stale-while-revalidate answer does. An answer showing `ok` a connection that changed
(reloaded, or past its TTL) is never served in place of the new one, nor is any answer to a
caller that asked for a refetch. It carries its own ETag (its data state) and `max-age=0`,
so a caller asks again and gets the new answer once it is built. (A TTL lapse changes only
a status: that answer is built at once, cheaply, from the positions already sorted.)

Kept answers are found by `AnswerKey` = (route, data state, normalised query): `key_of`
(`Question`, `Gathered.state`). A route's `Question` is its name and the query as it
normalises it; a fast path that serves without the route must know both (and the current
data state) before `AnswerCache.kept` can name an answer.

The public surface, for the routes and for a fast path at the edge that serves kept answers
without FastAPI: `Question`, `AnswerKey`, `KeptAnswer`, `AnswerCache.kept` (a synchronous
look-up of a kept answer by its key), `AnswerCache.get`, `AnswerCache.encoded`,
`AnswerCache.previous`, `AnswerCache.build_behind` (with `AnswerCache.run_behind` for what a
route must work out first), `etag_of`, `ENCODINGS`; and `AnswerCache.remember` /
`AnswerCache.recall`: how a request's raw query names its question again (`Recall`),
remembered by `app.api.caching.answer_json` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import threading
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn, TypeVar

import msgspec
import zstandard
from cachetools import LRUCache
from pydantic import BaseModel, TypeAdapter

from app.api.errors import BuildsBusyError
from app.domain.snapshot import encode_json
from app.flight import Flights

if TYPE_CHECKING:
    from app.services.treasury import Gathered

T = TypeVar("T")

logger = logging.getLogger(__name__)

ENCODINGS = ("zstd", "gzip")
# Compressed once per answer and data state, then sent as often as it is asked: worth the
# libraries' default levels.
_LEVEL = {"zstd": 3, "gzip": 6}

MEDIA_TYPE = "application/json"


@dataclass(frozen=True)
class Question:
    """What an answer is about: its route and its normalised query (hashable, and written
    the same way every time it is asked)."""

    route: str
    query: Hashable


# (route, data state, normalised query): what names one answer's bytes. The data state is
# `Gathered.state`, one entry per connection the answer needs (each starting with its key).
AnswerKey = tuple[str, tuple[Hashable, ...], Hashable]


def key_of(question: Question, state: tuple[Hashable, ...]) -> AnswerKey:
    return (question.route, state, question.query)


def etag_of(question: Question, state: tuple[Hashable, ...]) -> str:
    """The validator of an answer: its key (data state and question), never its bytes, so a
    304 needs neither. Weak: a compressed form of the same answer carries it too."""
    digest = hashlib.sha256(repr(key_of(question, state)).encode()).hexdigest()[:32]
    return f'W/"{digest}"'


@dataclass(eq=False)
class KeptAnswer:
    """One answer's bytes: the whole JSON body (`MEDIA_TYPE`), and each encoding of it
    compressed so far (`encoded`; `AnswerCache.encoded` compresses one on first ask).

    `state` is the data state it was built for and `etag` its validator; neither the body
    nor its compressed forms ever change once kept."""

    key: AnswerKey
    body: bytes
    etag: str
    media_type: str = MEDIA_TYPE
    encoded: dict[str, bytes] = field(default_factory=dict)

    @property
    def state(self) -> tuple[Hashable, ...]:
        return self.key[1]


# Items serialised per call when a list is long: one call holds the interpreter lock
# throughout, and a 10,000-position page in one call holds it for tens of milliseconds.
_SLICE = 500
_LIST_ADAPTERS: dict[type, TypeAdapter[list[object]]] = {}


def _dump(model: BaseModel) -> bytes:
    """The model's JSON, its longest list serialised in slices: the same bytes as
    `model.model_dump_json()`.

    A list of snapshot Structs (the response built with `model_construct` around a page of
    the snapshot) is written by msgspec where the model writes its list: the bytes the model
    would write holding the public models of the same data (`app.domain.snapshot`)."""
    name, items = "", list[object]()
    for field_name, value in model:
        if isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
            name, items = field_name, value
            break
        if isinstance(value, list) and len(value) > len(items):
            name, items = field_name, value
    structs = bool(items) and isinstance(items[0], msgspec.Struct)
    if len(items) <= _SLICE and not structs:
        return model.model_dump_json().encode()
    head = model.model_copy(update={name: []}).model_dump_json().encode()
    empty = b'"' + name.encode() + b'":[]'
    assert head.count(empty) == 1, name
    if structs:
        parts = [encode_json(items[i : i + _SLICE])[1:-1] for i in range(0, len(items), _SLICE)]
    else:
        item_type = type(items[0])
        adapter = _LIST_ADAPTERS.get(item_type)
        if adapter is None:
            adapter = _LIST_ADAPTERS[item_type] = TypeAdapter(list[item_type])  # type: ignore[valid-type]
        parts = [
            adapter.dump_json(items[i : i + _SLICE])[1:-1] for i in range(0, len(items), _SLICE)
        ]
    before, _, after = head.partition(empty)
    return b"".join((before, empty[:-1], b",".join(parts), b"]", after))


def compress(body: bytes, encoding: str) -> bytes:
    """`body` compressed whole for `encoding` (`zstd` or `gzip`), by the library."""
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=_LEVEL["zstd"]).compress(body)
    # mtime=0: the same body gives the same bytes, whenever it is compressed.
    return gzip.compress(body, compresslevel=_LEVEL["gzip"], mtime=0)


class AbandonedError(Exception):
    """Every caller of a build left before it was serialised: it is dropped."""


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
    """A build under way: its place among the builds, and whether it has left (every
    caller gone) or started."""

    key: AnswerKey
    ticket: asyncio.Future[None]
    abandoned: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    task: asyncio.Task[KeptAnswer] = field(init=False)


# Filtered sets kept per data state (each holds references into the snapshot, no copies).
_DERIVED_PER_STATE = 16

# A kept answer larger than this is compressed in a build place (a 50,000-client page is
# about 500 KB; a smaller one takes well under a millisecond).
COMPRESSED_IN_A_PLACE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Recall:
    """How a request names its kept answer again: its question, the route that answered it
    (named in the metrics), and `again`, which gives its data state anew without waiting:
    the last one gathered while it is unchanged, else a gather (None when a connection
    would wait on a load)."""

    question: Question
    route: object
    again: Callable[[], Gathered | Awaitable[Gathered] | None]


# Raw queries remembered: the questions callers repeat, each a few hundred bytes.
_RECALLED = 4096


class AnswerCache:
    """Kept answers by `AnswerKey` (route, data state, normalised query), bounded by their
    bytes (compressed forms counted in); least recently used go first."""

    def __init__(
        self,
        max_bytes: int = 64 * 1024 * 1024,
        *,
        on_build: Callable[[str], None] | None = None,
        limiter: BuildLimiter | None = None,
        on_abandoned: Callable[[str], None] | None = None,
    ) -> None:
        # One answer at 50,000 clients is half a megabyte; its compressed forms are counted
        # as much again.
        self._kept: LRUCache[AnswerKey, KeptAnswer] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda kept: 2 * len(kept.body) + 256
        )
        # The last answer built for each question (route, query), whatever its data state,
        # while it is kept: what serves while the next one builds.
        self._latest: weakref.WeakValueDictionary[tuple[str, Hashable], KeptAnswer] = (
            weakref.WeakValueDictionary()
        )
        # One build per key for every caller (a build every caller left gives its place up),
        # and one compression per (key, encoding).
        self._building: Flights[AnswerKey, KeptAnswer] = Flights()
        self._compressing: Flights[tuple[AnswerKey, str], bytes] = Flights()
        self._recalls: LRUCache[tuple[str, bytes], Recall] = LRUCache(maxsize=_RECALLED)
        self._behind: dict[Hashable, asyncio.Future[None]] = {}
        self.limiter = limiter if limiter is not None else BuildLimiter()
        self._on_abandoned = on_abandoned
        self._derived: dict[
            tuple[str, tuple[Hashable, ...]], tuple[Hashable, LRUCache[Hashable, object]]
        ] = {}
        # What several questions have in common (every position, sorted) is kept for the
        # latest data state of each set of connections only: it holds the snapshot it was
        # built from, which must not outlive its replacement. Builds run in worker threads,
        # so these are read and written under a lock.
        self._per_state: dict[tuple[str, tuple[Hashable, ...]], tuple[Hashable, object]] = {}
        self._lock = threading.Lock()
        self._on_build = on_build
        self.builds = 0

    def per_state(self, name: str, state: tuple[Hashable, ...], build: Callable[[], T]) -> T:
        """A value derived from one data state, built once for every question about it
        (`state`: one entry per connection, its key first)."""
        connections = tuple(entry[0] if isinstance(entry, tuple) else entry for entry in state)
        with self._lock:
            held = self._per_state.get((name, connections))
            if held is None or held[0] != state:
                held = (state, build())
                self._per_state[name, connections] = held
            found: T = held[1]  # type: ignore[assignment]
            return found

    def derived(
        self, name: str, state: tuple[Hashable, ...], key: Hashable, build: Callable[[], T]
    ) -> T:
        """A value derived from one data state and part of a question (a filter, without
        the page), kept for the latest state of each set of connections only, a few per
        state: every page of one filtered set then costs a slice, not a filter and totals."""
        connections = tuple(entry[0] if isinstance(entry, tuple) else entry for entry in state)
        with self._lock:
            held = self._derived.get((name, connections))
            if held is not None and held[0] == state and key in held[1]:
                found: T = held[1][key]  # type: ignore[assignment]
                return found
        value = build()
        with self._lock:
            held = self._derived.get((name, connections))
            if held is None or held[0] != state:
                # A new state: what the old one derived goes with it.
                held = (state, LRUCache(maxsize=_DERIVED_PER_STATE))
                self._derived[name, connections] = held
            held[1][key] = value
        return value

    def kept(self, key: AnswerKey) -> KeptAnswer | None:
        """The answer kept for `key` (`key_of(question, state)`), if it is built; synchronous,
        so a fast path can serve it without waiting. Marks it recently used."""
        return self._kept.get(key)

    def remember(self, path: str, query: bytes, recall: Recall) -> None:
        """Remember how a request for `path` with this raw query names its answer."""
        self._recalls[path, query] = recall

    def recall(self, path: str, query: bytes) -> Recall | None:
        """How a request for `path` with this raw query names its answer, if remembered."""
        return self._recalls.get((path, query))

    def previous(self, question: Question) -> KeptAnswer | None:
        """The last answer built for `question` that is still kept, whatever its data state
        (the caller decides whether its bytes are still true now)."""
        return self._latest.get((question.route, question.query))

    async def get(
        self, question: Question, state: tuple[Hashable, ...], build: Callable[[], BaseModel]
    ) -> KeptAnswer:
        """The answer to `question` about `state`: kept, or built now (in a worker thread, a
        build place taken, or `BuildsBusyError`) from the model `build` returns."""
        key = key_of(question, state)
        kept = self._kept.get(key)
        if kept is not None:
            return kept
        if key not in self._building:
            self._start(question, state, build, abandoned_when_left=True)
        return await self._building.run(key, _never_started)

    def build_behind(
        self, question: Question, state: tuple[Hashable, ...], build: Callable[[], BaseModel]
    ) -> None:
        """Start building the answer to `question` about `state` unless it is kept or under
        way, without waiting for it: it is kept for the next caller. With every build place
        and queue place taken, nothing is started (the next caller tries again)."""
        key = key_of(question, state)
        if key in self._kept or key in self._building:
            return
        with contextlib.suppress(BuildsBusyError):
            # Nobody waits for it and it is never abandoned: the next caller wants it.
            self._start(question, state, build, abandoned_when_left=False)

    def run_behind(
        self, key: Hashable, work: Callable[[], Coroutine[object, object, None]]
    ) -> None:
        """Run `work` as a task of its own unless one for `key` is still running: what a
        route starts, when it serves a previous answer, to work out what the new answer needs
        before `build_behind` (the rates of a conversion). A failure is logged, never raised
        to a caller (the next one asks again)."""
        if key in self._behind:
            return
        task = asyncio.ensure_future(work())
        self._behind[key] = task
        task.add_done_callback(lambda done: self._done_behind(key, done))

    def _done_behind(self, key: Hashable, done: asyncio.Future[None]) -> None:
        if self._behind.get(key) is done:
            del self._behind[key]
        if not done.cancelled() and (failure := done.exception()) is not None:
            logger.error("working out an answer behind the one served failed", exc_info=failure)

    def _start(
        self,
        question: Question,
        state: tuple[Hashable, ...],
        build: Callable[[], BaseModel],
        *,
        abandoned_when_left: bool,
    ) -> None:
        # A place now, or BuildsBusyError (a 503) before anything is started. A build every
        # caller left is never joined (`Flights` frees its key): the next one starts anew.
        key = key_of(question, state)
        building = _Building(key, self.limiter.enter())
        building.task = self._building.start(
            key,
            lambda: self._build(question, build, building),
            on_abandoned=(lambda: self._abandon(question.route, building))
            if abandoned_when_left
            else None,
        )
        # Here, not in the build: a build cancelled before it ever ran gives its place back too.
        building.task.add_done_callback(lambda _: self.limiter.leave(building.ticket))

    def _abandon(self, route: str, building: _Building) -> None:
        """Every caller left: a queued build gives its place up; a running one finishes the
        work in hand but is not serialised (a thread cannot be stopped from outside)."""
        if self._on_abandoned is not None:
            self._on_abandoned(route)
        building.abandoned.set()
        if not building.started:
            building.task.cancel()

    async def _build(
        self, question: Question, build: Callable[[], BaseModel], building: _Building
    ) -> KeptAnswer:
        await building.ticket  # cancelled, with this task, when every caller left first
        building.started = True
        self.builds += 1
        if self._on_build is not None:
            self._on_build(question.route)

        def work() -> bytes:
            model = build()
            if building.abandoned.is_set():
                raise AbandonedError
            return _dump(model)

        body = await asyncio.to_thread(work)
        key = building.key
        kept = KeptAnswer(key, body, etag_of(question, key[1]))
        self._kept[key] = kept
        self._latest[question.route, question.query] = kept
        return kept

    async def encoded(self, answer: KeptAnswer, encoding: str) -> bytes:
        """The answer's body compressed whole for `encoding` (one of `ENCODINGS`), once per
        answer, in a worker thread; a large one in a build place (compressing it costs about
        what building it did), or `BuildsBusyError` when none is free."""
        done = answer.encoded.get(encoding)
        if done is not None:
            return done
        key = (answer.key, encoding)
        if key not in self._compressing:
            ticket = None
            if len(answer.body) > COMPRESSED_IN_A_PLACE_BYTES:
                ticket = self.limiter.enter()  # BuildsBusyError: nothing kept, asked anew
            task = self._compressing.start(key, lambda: _compressed(answer, encoding, ticket))
            if ticket is not None:
                task.add_done_callback(lambda _: self.limiter.leave(ticket))
        return await self._compressing.run(key, _never_started)


async def _compressed(
    answer: KeptAnswer, encoding: str, ticket: asyncio.Future[None] | None
) -> bytes:
    if ticket is not None:
        await ticket
    compressed = await asyncio.to_thread(compress, answer.body, encoding)
    # Kept once made; a failure is not kept (the next asker tries again).
    answer.encoded[encoding] = compressed
    return compressed


async def _never_started() -> NoReturn:
    # `run` joins the call just started for its key; this stands for the call it never starts.
    raise AssertionError("joined a call that was not started")
