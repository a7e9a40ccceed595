"""The sandbox's past: plausible history written into its own empty store at start, so a chart
has a series at once.

Each connection is loaded once from its simulator (today's figures, through tesoro's own
adapters), then walked back day by day: a few accounts per connection drift by a seeded random
walk that ends exactly at today's figures, so the seeded past joins the live data without a
jump. The past is observed on each connection's schedule and written through the store's own
write path with the recorder's change-only rule (`diff`: only the accounts that changed, totals
only with them), so it reads exactly like observed history. One bank is left unobserved for
two days, as happens, so the chart shows a gap honestly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from app.domain.interpret import Interpreted
from app.domain.models import CurrencyTotal
from app.domain.snapshot import Account, Counterparty, Position
from app.services.history import KnownAccount, diff, utcnow
from app.services.treasury import Connection
from app.store.history import AccountKey, AccountRow, HistoryStore, NewObservation
from app.upstreams.errors import UpstreamError

SEED = 19
# The largest drift of a moving account from today's figure, as a fraction of it (a walk
# never reaches zero, so an account never changes side).
_MAX_DRIFT = Decimal("0.35")
# The bank (by position among the consents that answered) unobserved for two days, and when.
_GAP_BANK = 1
_GAP_DAYS = (41, 40)
# Observations a little under twice the observe interval apart: history's gap rule (twice
# the interval) finds none; at most this many per connection, so a start stays quick.
_CADENCE = 1.9
_MOST_PER_CONNECTION = 5000


def _walk(rng: random.Random, days: int) -> list[Decimal]:
    """A drift (fraction of today's figure) for each day back, 0 today, bounded."""
    drift = Decimal(0)
    found = [drift]
    for _ in range(days):
        step = Decimal(rng.randint(-40, 40)) / 1000
        drift = min(_MAX_DRIFT, max(-_MAX_DRIFT, drift + step))
        found.append(drift)
    return found


def _moved(position: Position, drift: Decimal, days_back: int) -> Position:
    """The position `days_back` days ago, its amount off today's by `drift` of it."""
    delta = (position.amount * drift).quantize(position.amount)
    update: dict[str, Any] = {"amount": position.amount + delta}
    if position.available is not None:
        update["available"] = position.available + delta
    if position.available_with_credit_line is not None:
        update["available_with_credit_line"] = position.available_with_credit_line + delta
    if position.as_of is not None:
        update["as_of"] = position.as_of - timedelta(days=days_back)
    return msgspec.structs.replace(position, **update)


def _past(today: Interpreted, walks: dict[str, list[Decimal]], days_back: int) -> Interpreted:
    """The connection's snapshot `days_back` days ago: moving accounts off by their walk."""

    def account(found: Account) -> Account:
        position = found.position
        if position is None:
            return found
        drift = walks.get(f"{position.account_id}/{position.currency}")
        if drift is None:
            return found
        return msgspec.structs.replace(
            found, position=_moved(position, drift[days_back], days_back)
        )

    def counterparty(found: Counterparty) -> Counterparty:
        return msgspec.structs.replace(found, accounts=tuple(account(a) for a in found.accounts))

    return replace(today, counterparties=tuple(counterparty(c) for c in today.counterparties))


def _walks(rng: random.Random, today: Interpreted, days: int) -> dict[str, list[Decimal]]:
    """A few non-zero accounts of the connection (a third, at least one) and their walks."""
    keys = sorted(
        f"{account.position.account_id}/{account.position.currency}"
        for counterparty in today.counterparties
        for account in counterparty.accounts
        if account.position is not None and account.position.amount != 0
    )
    chosen = rng.sample(keys, k=max(1, len(keys) // 3)) if keys else []
    return {key: _walk(rng, days) for key in chosen}


@dataclass(slots=True)
class _Seeded:
    """One connection as seeded so far: today's snapshot, its walks and what the store holds."""

    key: str
    today: Interpreted
    walks: dict[str, list[Decimal]]
    every: timedelta
    held: dict[AccountKey, KnownAccount] = field(default_factory=dict)
    days_back: int | None = None
    warnings: str = "[]"
    written: int = 0


async def seed_history(
    store: HistoryStore,
    connections: Sequence[Connection],
    *,
    days: int,
    interval_of: Callable[[str], float],
    now: datetime | None = None,
) -> int:
    """Write `days` days of past observations for `connections` into an empty `store`; the
    observations written (none when the store already holds one, so a second start never
    seeds again).

    Each connection is observed on its schedule (`interval_of` its key, in seconds; a little
    under twice that apart, so history finds no gap but the seeded one), its figures moving
    once a day and reaching today's on the last day. Each observation is what the recorder
    would write: the accounts that changed (`diff`), totals only with them."""
    if days <= 0 or await store.latest_seq() is not None:
        return 0
    now = utcnow() if now is None else now
    rng = random.Random(SEED)  # noqa: S311 - a plausible past, the same on every start
    seeded: list[_Seeded] = []
    for connection in connections:
        try:
            today = (await connection.snapshot(refresh=True)).value
        except UpstreamError:
            continue  # a consent that answers no data (expired) has no past either
        every = max(
            timedelta(seconds=_CADENCE * interval_of(connection.key)),
            timedelta(days=days) / _MOST_PER_CONNECTION,
        )
        seeded.append(_Seeded(connection.key, today, _walks(rng, today, days), every))
    banks = [one.key for one in seeded if one.key != "finsync"]
    unobserved = banks[_GAP_BANK] if len(banks) > _GAP_BANK else None
    start = now - timedelta(days=days)
    for index, one in enumerate(seeded):
        # Each connection observed at its own minutes, a few apart.
        moment = start + timedelta(minutes=7 * index)
        while moment < now:
            days_back = (now - moment).days
            unseen = one.key == unobserved and _GAP_DAYS[0] >= days_back >= _GAP_DAYS[1]
            if not unseen:
                await _observe(store, one, moment, days_back)
            moment += one.every
    # tesoro was "running" throughout the seeded past: its gaps are the seeded ones only.
    await store.run_seen(f"sandbox-seed-{SEED}", start, now)
    await store.run_stopped(f"sandbox-seed-{SEED}", now)
    return sum(one.written for one in seeded)


async def _observe(store: HistoryStore, one: _Seeded, moment: datetime, days_back: int) -> None:
    """One observation of the connection at `moment`, as the recorder writes it."""
    rows: tuple[AccountRow, ...] = ()
    totals: tuple[CurrencyTotal, ...] | None = None
    held = one.held
    if days_back != one.days_back:  # the figures move once a day
        found = diff(one.held, _past(one.today, one.walks, days_back))
        rows, held, one.warnings = found.rows, found.held, found.warnings
        totals = found.totals if rows or one.days_back is None else None
        one.days_back = days_back
    seq = await store.write(
        NewObservation(
            source=one.key,
            version=f"sandbox-seed:{one.written}",
            at=moment,
            fetched_at=moment,
            observed_at=moment,
            status="ok",
            error_code=None,
            error_message=None,
            data=True,
            warnings=one.warnings,
            accounts=rows,
            totals=totals,
        )
    )
    if seq is None:
        return
    one.written += 1
    one.held = {
        key: KnownAccount(seq, account.figures, account.digest) if account.seq == 0 else account
        for key, account in held.items()
    }
