"""Interpretation results in tests: one fetch time for every upstream answer, and the one
counterparty or warning a result is expected to hold."""

from __future__ import annotations

from datetime import UTC, datetime

from app.domain.interpret import Interpreted
from app.domain.snapshot import Counterparty

FETCHED_AT = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
"""When the upstream answers under test were fetched."""


def only_counterparty(result: Interpreted) -> Counterparty:
    assert len(result.counterparties) == 1
    return result.counterparties[0]


def only_warning(result: Interpreted) -> tuple[str, str, str | None, str | None]:
    """The result's one warning as (code, source, counterparty_id, account_id)."""
    [warning] = result.warnings
    return (warning.code, warning.source, warning.counterparty_id, warning.account_id)
