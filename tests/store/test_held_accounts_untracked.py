"""What history holds for every account, for as long as the process runs, is never walked by
the garbage collector's full collections (at 50,000 clients they were what stalled the event
loop during a reload)."""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from decimal import Decimal

from app.domain.observations import AccountFigures
from app.services.history import KnownAccount, record_digest
from app.store.history import HeldAccount


def test_held_accounts_and_their_figures_are_not_tracked_by_the_collector() -> None:
    figures = AccountFigures(
        counterparty_id="finsync:1",
        account_id="10",
        currency="ARS",
        amount=Decimal("1.50"),
        available=None,
        credit_line=None,
        meaning="cash",
        side="asset",
        as_of=datetime(2026, 12, 2, tzinfo=UTC),
    )
    held = HeldAccount(7, figures, '{"amount":"1.50"}')
    known = KnownAccount.of(held)  # what the recorder keeps of it: the JSON's digest
    assert not gc.is_tracked(figures)
    assert not gc.is_tracked(held)
    assert not gc.is_tracked(known)
    assert known == KnownAccount(7, figures, record_digest('{"amount":"1.50"}'))
    # Still values: equal by content, hashable, read by name.
    assert held == HeldAccount(7, figures, '{"amount":"1.50"}')
    assert hash(figures) == hash(
        AccountFigures(
            counterparty_id="finsync:1",
            account_id="10",
            currency="ARS",
            amount=Decimal("1.5"),
            available=None,
            credit_line=None,
            meaning="cash",
            side="asset",
            as_of=datetime(2026, 12, 2, tzinfo=UTC),
        )
    )
    assert (held.seq, held.figures.amount) == (7, Decimal("1.50"))
