"""The sandbox's past: plausible history written into its own empty store at start, so a chart
has a series at once.

Each connection is loaded once from its simulator (today's figures, through tesoro's own
adapters), then walked back day by day: a few accounts per connection drift by a seeded random
walk that ends exactly at today's figures, so the seeded past joins the live data without a
jump. The snapshots go through a `HistoryRecorder` of their own into the store, so the seeded
past is written with the same tables and the same change-only rules as live observations.
One bank is left unobserved for two days, as happens, so the chart shows a gap honestly.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from app.cache import Cached
from app.domain.interpret import Interpreted
from app.domain.models import Account, Counterparty, Position
from app.services.history import HistoryRecorder, utcnow
from app.services.treasury import Connection
from app.store.history import HistoryStore
from app.upstreams.errors import UpstreamError

logger = logging.getLogger(__name__)

SEED = 19
# The largest drift of a moving account from today's figure, as a fraction of it (a walk
# never reaches zero, so an account never changes side).
_MAX_DRIFT = Decimal("0.35")
# The bank (by position among the consents that answered) unobserved for two days, and when.
_GAP_BANK = 1
_GAP_DAYS = (41, 40)


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
    update: dict[str, object] = {"amount": position.amount + delta}
    if position.available is not None:
        update["available"] = position.available + delta
    if position.available_with_credit_line is not None:
        update["available_with_credit_line"] = position.available_with_credit_line + delta
    if position.as_of is not None:
        update["as_of"] = position.as_of - timedelta(days=days_back)
    return position.model_copy(update=update)


def _past(today: Interpreted, walks: dict[str, list[Decimal]], days_back: int) -> Interpreted:
    """The connection's snapshot `days_back` days ago: moving accounts off by their walk."""

    def account(found: Account) -> Account:
        position = found.position
        if position is None:
            return found
        drift = walks.get(f"{position.account_id}/{position.currency}")
        if drift is None:
            return found
        return found.model_copy(update={"position": _moved(position, drift[days_back], days_back)})

    def counterparty(found: Counterparty) -> Counterparty:
        return found.model_copy(update={"accounts": [account(a) for a in found.accounts]})

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


async def seed_history(
    store: HistoryStore,
    connections: Sequence[Connection],
    *,
    days: int,
    now: datetime | None = None,
) -> int:
    """Write `days` days of past observations for `connections` into an empty `store`, the
    last one (a day ago) at today's figures; the observations written (0 when the store
    already holds one, so a second start never seeds again)."""
    if days <= 0 or await store.latest_seq() is not None:
        return 0
    now = utcnow() if now is None else now
    rng = random.Random(SEED)  # noqa: S311 - a plausible past, the same on every start
    todays: list[tuple[str, Interpreted]] = []
    for connection in connections:
        try:
            todays.append((connection.key, (await connection.snapshot(refresh=True)).value))
        except UpstreamError:
            continue  # a consent that answers no data (expired) has no past either
    # The recorder's clock is the seeded moment: its run starts where the seeded past does.
    moment = now - timedelta(days=days)
    recorder = HistoryRecorder(store, clock=lambda: moment)
    await recorder.start()
    try:
        banks = [key for key, _ in todays if key != "finsync"]
        unobserved = banks[_GAP_BANK] if len(banks) > _GAP_BANK else None
        walks = {key: _walks(rng, today, days) for key, today in todays}
        for days_back in range(days, 0, -1):
            # Each connection observed at its own hour of the day, a few minutes apart.
            for index, (key, today) in enumerate(todays):
                if key == unobserved and days_back in _GAP_DAYS:
                    continue
                moment = now - timedelta(days=days_back) + timedelta(minutes=7 * index)
                cached = Cached(
                    value=_past(today, walks[key], days_back - 1),
                    status="fresh",
                    fetched_at=moment,
                    age_seconds=0.0,
                    expires_in_seconds=0.0,
                    version=days - days_back + 1,
                )
                recorder.on_value(key, cached, None)
        await recorder.flush()
        # tesoro was "running" throughout the seeded past: its gaps are the seeded ones only.
        moment = now
        await store.run_seen(recorder.run_id, now - timedelta(days=days), now)
    finally:
        await recorder.stop()
    written = await store.latest_seq() or 0
    logger.info("history: the sandbox's store seeded with %d days of past observations", days)
    return written
