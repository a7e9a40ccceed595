"""Aggregated answers as bytes, built once per data version and question, spliced per request.

An answer's body is its model's JSON. Almost all of it (positions, totals, items, warnings)
changes only when a connection's data or state does, so it is built once per
(route, data state, normalised query) and kept in a bounded cache; only the volatile
members (`sources` with their `age_seconds`, and `generated_at`) are written per request,
around the kept bytes. The ETag names the data state and the question, so a 304 costs no
serialisation at all. A test keeps the spliced bytes identical to a plain model dump.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

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


@dataclass(frozen=True)
class Question:
    """What an answer is about: its route and its normalised query (hashable, and written
    the same way every time it is asked)."""

    route: str
    query: Hashable
    generated_at: bool


@dataclass(frozen=True)
class Prebuilt:
    """The stable middle of an answer's JSON (its validator is `etag_of` its question)."""

    middle: bytes
    ends_with_generated_at: bool


def _cut(model: BaseModel, *, generated_at: bool) -> bytes:
    body = model.model_dump_json().encode()
    suffix = b',"generated_at":' + _MOMENT.dump_json(EPOCH) + b"}" if generated_at else b"}"
    # The models list `sources` first and `generated_at` last: a test holds them to that.
    assert body.startswith(_PREFIX)
    assert body.endswith(suffix)
    return body[len(_PREFIX) : len(body) - len(suffix)]


class AnswerCache:
    """Kept answers by (route, data state, normalised query); least recently used go first."""

    def __init__(self, maxsize: int = 512) -> None:
        self._kept: LRUCache[Hashable, Prebuilt] = LRUCache(maxsize=maxsize)
        # What several questions share (every position, sorted) is kept per data state too.
        self._shared: LRUCache[Hashable, object] = LRUCache(maxsize=32)
        self.builds = 0

    def shared(self, key: Hashable, build: Callable[[], T]) -> T:
        """A value derived from one data state, built once for every question about it."""
        if key not in self._shared:
            self._shared[key] = build()
        found: T = self._shared[key]  # type: ignore[assignment]
        return found

    def get(
        self, question: Question, state: tuple[Hashable, ...], build: Callable[[], BaseModel]
    ) -> Prebuilt:
        key = (question.route, state, question.query)
        kept = self._kept.get(key)
        if kept is None:
            # Built without an await: concurrent requests for one key build it once.
            self.builds += 1
            middle = _cut(build(), generated_at=question.generated_at)
            kept = Prebuilt(middle, question.generated_at)
            self._kept[key] = kept
        return kept


def etag_of(question: Question, state: tuple[Hashable, ...]) -> str:
    """The validator of an answer: its data state and its question, never its bytes (weak:
    the volatile members differ between two answers with one ETag)."""
    key = (question.route, state, question.query)
    digest = hashlib.sha256(repr(key).encode()).hexdigest()[:32]
    return f'W/"{digest}"'


def splice(prebuilt: Prebuilt, sources: Sequence[SourceInfo], generated_at: datetime) -> bytes:
    """The whole answer: this request's sources and time around the kept bytes."""
    parts = [b'{"sources":', _SOURCES.dump_json(list(sources)), b",", prebuilt.middle]
    if prebuilt.ends_with_generated_at:
        parts += [b',"generated_at":', _MOMENT.dump_json(generated_at)]
    parts.append(b"}")
    return b"".join(parts)
