"""Tests of counterparty search: normalisation, duplicate names, filters, order and paging."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.counterparties import (
    filter_counterparties,
    normalize_text,
    paginate,
)
from app.domain.models import Kind, Source
from app.domain.snapshot import Account, Counterparty


def counterparty(
    counterparty_id: str,
    name: str,
    *,
    description: str | None = None,
    kind: Kind = Kind.external,
    source: Source = Source.finsync,
    currencies: tuple[str, ...] = (),
) -> Counterparty:
    accounts = tuple(
        Account(id=f"{counterparty_id}-{code}", name=code, currency=code, position=None)
        for code in currencies
    )
    return Counterparty(
        id=counterparty_id,
        source=source,
        kind=kind,
        name=name,
        description=description,
        accounts=accounts,
    )


CAFE = counterparty(
    "finsync:1", "Café Martínez", description="proveedor de café", currencies=("ARS",)
)
BANCO = counterparty(
    "finqware:bt-main",
    "Banca Transilvania",
    description="Cont principal",
    kind=Kind.internal,
    source=Source.finqware,
    currencies=("RON", "EUR"),
)
CAJA = counterparty("finsync:2", "caja chica", kind=Kind.internal, currencies=("ARS", "USD"))
ZETA = counterparty("finsync:3", "Zeta SA")
ALL = [ZETA, CAFE, CAJA, BANCO]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Café   Martínez ", "cafe martinez"),
        ("ÑANDÚ\tS.A.", "nandu s.a."),
        ("Straße", "strasse"),
        # Full-width letters and an ideographic space: NFKD folds them to ASCII.
        ("\uff26\uff55\uff4c\uff4c\u3000\uff37\uff49\uff44\uff54\uff48", "full width"),
        ("", ""),
    ],
)
def test_normalize_text_drops_case_accents_and_extra_spaces(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_listing_is_ordered_by_normalised_name_then_id() -> None:
    twin = counterparty("finsync:0", "zeta sa")
    found = filter_counterparties([*ALL, twin])
    assert [c.id for c in found] == [
        "finqware:bt-main",
        "finsync:1",
        "finsync:2",
        "finsync:0",
        "finsync:3",
    ]


def test_q_finds_accented_names_without_accents() -> None:
    assert filter_counterparties(ALL, q="cafe") == [CAFE]


def test_q_matches_the_description_too() -> None:
    assert filter_counterparties(ALL, q="PRINCIPAL") == [BANCO]


def test_blank_q_filters_nothing() -> None:
    assert len(filter_counterparties(ALL, q="   ")) == len(ALL)


def test_kind_and_source_filters() -> None:
    assert filter_counterparties(ALL, kind=Kind.internal) == [BANCO, CAJA]
    assert filter_counterparties(ALL, source=Source.finqware) == [BANCO]
    assert filter_counterparties(ALL, kind=Kind.external, source=Source.finqware) == []


def test_currency_filter_keeps_counterparties_with_an_account_in_it() -> None:
    assert filter_counterparties(ALL, currencies=["ars"]) == [CAFE, CAJA]
    assert filter_counterparties(ALL, currencies=["EUR"]) == [BANCO]
    assert filter_counterparties(ALL, currencies=["JPY"]) == []
    # Any of several, each case-insensitive: a second value adds, never replaces.
    assert filter_counterparties(ALL, currencies=["eur", "Usd"]) == [BANCO, CAJA]


def test_paginate_returns_the_requested_slice() -> None:
    items = list(range(7))
    assert paginate(items, 1, 3) == [0, 1, 2]
    assert paginate(items, 3, 3) == [6]
    assert paginate(items, 4, 3) == []


@pytest.mark.parametrize(("page", "page_size"), [(0, 10), (1, 0)])
def test_paginate_refuses_pages_and_sizes_below_one(page: int, page_size: int) -> None:
    with pytest.raises(ValueError, match="page"):
        paginate([1, 2], page, page_size)


@given(st.text(alphabet=st.characters(max_codepoint=127)) | st.text())
def test_names_normalise_to_nfkd_without_marks_casefolded_and_spaced(raw: str) -> None:
    reference = unicodedata.normalize("NFKD", raw)
    reference = "".join(ch for ch in reference if not unicodedata.combining(ch))
    assert normalize_text(raw) == " ".join(reference.casefold().split())
