"""What tesoro observed of one connection at one data state: the unit of history and events.

The history recorder (`app.services.history`) writes one `Observation` each time a
connection's data state changes (a new data version, or a status/error change), keeping only
the accounts whose figures changed, and hands each stored observation to its listeners; the
events service (`app.services.events`) turns them into server-sent events whose `id` is the
observation's `seq`, so a client reconnecting with `Last-Event-ID` is replayed from history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import msgspec


class AccountFigures(msgspec.Struct, frozen=True, gc=False):
    """One account's interpreted figures as observed (a position's money and meaning).

    Held for every account of every connection (70,000 at 50,000 clients) as long as the
    process runs: a Struct the garbage collector never tracks (it holds no container), so
    full collections do not walk them."""

    counterparty_id: str
    account_id: str
    currency: str
    amount: Decimal
    available: Decimal | None
    credit_line: Decimal | None
    meaning: str
    side: str
    as_of: datetime | None


@dataclass(frozen=True, slots=True)
class AccountChange:
    """An account whose figures differ from the previous observation of its connection:
    `before` is None when it appeared, `after` None when it vanished."""

    counterparty_id: str
    account_id: str
    currency: str
    before: AccountFigures | None
    after: AccountFigures | None

    @property
    def delta(self) -> Decimal:
        after = Decimal(0) if self.after is None else self.after.amount
        before = Decimal(0) if self.before is None else self.before.amount
        return after - before


@dataclass(frozen=True, slots=True)
class Observation:
    """One connection at one new data state, as recorded (once across replicas).

    `seq` orders observations across every connection and replica (the store's key);
    `status` and `error_code`/`error_message` are the connection's state then; `changes`
    lists only accounts that changed (empty for a status-only change); `totals_delta`
    is the change of the connection's net per currency."""

    seq: int
    source: str
    version: str
    fetched_at: datetime | None
    observed_at: datetime
    status: str
    error_code: str | None
    error_message: str | None
    changes: tuple[AccountChange, ...]
    totals_delta: tuple[tuple[str, Decimal], ...]

    @property
    def figures_changed(self) -> bool:
        return bool(self.changes)
