"""An answer holding a page of the snapshot's Structs is written with the very bytes of the
public response model holding the same data as models (what FastAPI documents)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from app.api.answers import _dump
from app.domain import models
from tests.domain.test_snapshot import (
    NESTED,
    as_structs,
    as_structs_position,
    counterparty_fields,
    position_fields,
)

AT = datetime(2026, 12, 2, 9, tzinfo=UTC)
WARNING = models.ResponseWarning(code="invalid_amount", message="x", source="finsync")
SOURCE = models.SourceInfo(source="finsync", status=models.SourceStatus.ok, fetched_at=AT)


@NESTED
@given(st.lists(position_fields(), max_size=3), st.integers(1, 700), st.booleans())
def test_a_positions_answer_of_structs_is_the_response_models_bytes(
    found: list[dict[str, Any]], repeat: int, warned: bool
) -> None:
    # Repeated past the slice `answers` writes a long list in, and beside a longer list.
    found = (found * repeat)[:1200]
    common: dict[str, Any] = {
        "totals": [],
        "total": len(found),
        "page": 1,
        "page_size": 2000,
        "complete": True,
        "warnings": [WARNING] * (5 if warned else 0),
        "sources": [SOURCE],
        "generated_at": AT,
    }
    served = models.PositionsResponse(
        positions=[models.Position.model_validate(p) for p in found], **common
    )
    # The Structs where the model's type says models: what the routes build (see `_dump`).
    page: list[Any] = [as_structs_position(p) for p in found]
    built = models.PositionsResponse.model_construct(positions=page, **common)
    assert _dump(built) == served.model_dump_json().encode()


@NESTED
@given(st.lists(counterparty_fields(), max_size=4))
def test_a_counterparty_page_of_structs_is_the_response_models_bytes(
    found: list[dict[str, Any]],
) -> None:
    common: dict[str, Any] = {
        "page": 1,
        "page_size": 50,
        "total": len(found),
        "sources": [SOURCE],
        "complete": True,
        "warnings": [WARNING],
    }
    served = models.CounterpartyPage(
        items=[models.Counterparty.model_validate(f) for f in found], **common
    )
    page: list[Any] = [as_structs(f) for f in found]
    built = models.CounterpartyPage.model_construct(items=page, **common)
    assert _dump(built) == served.model_dump_json().encode()
