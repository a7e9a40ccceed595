"""Counterparty search: text normalisation, filtering, ordering and paging (duplicate names:
see names.py)."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

from app.domain.models import Counterparty, Kind, Source

T = TypeVar("T")


@lru_cache(maxsize=8192)
def normalize_text(value: str) -> str:
    """Case-, accent- and spacing-insensitive form: `  Café  Sol ` -> `cafe sol`.

    Cached: the same few hundred names are sorted and searched on every request.
    """
    decomposed = unicodedata.normalize("NFKD", value)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(without_marks.casefold().split())


def counterparty_order(item: Counterparty) -> tuple[str, str]:
    """Sort key of every counterparty listing: normalised name, then id."""
    return (normalize_text(item.name), item.id)


def filter_counterparties(
    items: Iterable[Counterparty],
    *,
    kind: Kind | None = None,
    source: Source | None = None,
    q: str | None = None,
    currencies: Collection[str] = (),
) -> list[Counterparty]:
    """The counterparties matching every given filter, ordered by name then id.

    `q` is a substring of the normalised name or description (`cafe` finds `Café`); a `q`
    that normalises to nothing filters nothing. `currencies` keeps counterparties with at
    least one account in any of them, case-insensitively (empty: no filter).
    """
    needle = normalize_text(q) if q is not None else ""
    wanted = {code.strip().upper() for code in currencies}
    kept = [
        item
        for item in items
        if (kind is None or item.kind == kind)
        and (source is None or item.source == source)
        and (not needle or _matches_text(item, needle))
        and (not wanted or any(account.currency.upper() in wanted for account in item.accounts))
    ]
    return sorted(kept, key=counterparty_order)


def _matches_text(item: Counterparty, needle: str) -> bool:
    if needle in normalize_text(item.name):
        return True
    return item.description is not None and needle in normalize_text(item.description)


def paginate(items: Sequence[T], page: int, page_size: int) -> list[T]:
    """Items of 1-based `page`; a page past the end is empty."""
    if page < 1:
        raise ValueError("page starts at 1")
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    start = (page - 1) * page_size
    return list(items[start : start + page_size])
