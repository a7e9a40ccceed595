"""Counterparty search: text normalisation, filtering, ordering and paging (duplicate names:
see names.py)."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple, TypeVar

from app.domain.models import Kind, Source
from app.domain.snapshot import Counterparty

T = TypeVar("T")


@lru_cache(maxsize=8192)
def normalize_text(value: str) -> str:
    """Case-, accent- and spacing-insensitive form: `  Café  Sol ` -> `cafe sol`.

    Cached: the same few hundred names are sorted and searched on every request.
    """
    if value.isascii():
        # Nothing to decompose and no marks: the same result, many times faster (most names).
        return " ".join(value.casefold().split())
    decomposed = unicodedata.normalize("NFKD", value)
    return " ".join(decomposed.translate(_WITHOUT_MARKS).casefold().split())


class _MarksRemoved(dict[int, int | None]):
    """A `str.translate` table that drops combining marks, filled as characters are met (a
    character seen before is a lookup in C, not a call)."""

    def __missing__(self, code: int) -> int | None:
        kept = None if unicodedata.combining(chr(code)) else code
        self[code] = kept
        return kept


_WITHOUT_MARKS = _MarksRemoved()


def counterparty_order(item: Counterparty) -> tuple[str, str]:
    """Sort key of every counterparty listing: normalised name, then id."""
    return (normalize_text(item.name), item.id)


class _Indexed(NamedTuple):
    item: Counterparty
    text: str  # normalised name, then normalised description, NUL-separated
    currencies: frozenset[str]


class CounterpartyIndex:
    """Counterparties in listing order with their searchable text normalised once, so every
    question about the same data filters without sorting or normalising again."""

    def __init__(self, items: Iterable[Counterparty]) -> None:
        # Each name normalised once, for the order and for the search.
        named = sorted((normalize_text(item.name), item.id, item) for item in items)
        self._entries = [
            _Indexed(
                item,
                name + "\x00" + normalize_text(item.description or ""),
                frozenset(account.currency.upper() for account in item.accounts),
            )
            for name, _, item in named
        ]

    def filter(
        self,
        *,
        kind: Kind | None = None,
        source: Source | None = None,
        q: str | None = None,
        currencies: Collection[str] = (),
    ) -> list[Counterparty]:
        """The counterparties matching every given filter, ordered by name then id.

        `q` is a substring of the normalised name or description (`cafe` finds `Café`); a
        `q` that normalises to nothing filters nothing. `currencies` keeps counterparties
        with at least one account in any of them, case-insensitively (empty: no filter).
        """
        # The separator of name and description can never be part of what is searched for.
        needle = normalize_text(q).replace("\x00", "") if q is not None else ""
        wanted = {code.strip().upper() for code in currencies}
        return [
            entry.item
            for entry in self._entries
            if (kind is None or entry.item.kind == kind)
            and (source is None or entry.item.source == source)
            and (not needle or needle in entry.text)
            and (not wanted or not wanted.isdisjoint(entry.currencies))
        ]


def filter_counterparties(
    items: Iterable[Counterparty],
    *,
    kind: Kind | None = None,
    source: Source | None = None,
    q: str | None = None,
    currencies: Collection[str] = (),
) -> list[Counterparty]:
    """The counterparties matching every given filter, ordered by name then id (see
    `CounterpartyIndex.filter`, which this builds for one question)."""
    return CounterpartyIndex(items).filter(kind=kind, source=source, q=q, currencies=currencies)


def paginate(items: Sequence[T], page: int, page_size: int) -> list[T]:
    """Items of 1-based `page`; a page past the end is empty."""
    if page < 1:
        raise ValueError("page starts at 1")
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    start = (page - 1) * page_size
    return list(items[start : start + page_size])
