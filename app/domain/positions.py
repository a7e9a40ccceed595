"""Positions across counterparties: listing order, the GET /positions filters, and totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import TypeVar

from app.domain import models
from app.domain.counterparties import counterparty_order, normalize_text
from app.domain.models import CurrencyTotal, Kind, Meaning, Side, Source
from app.domain.money import negate, sum_exact
from app.domain.snapshot import Counterparty, Position

# A snapshot's positions, or the history's (read back from its records as the public model).
AnyPosition = TypeVar("AnyPosition", Position, models.Position)


def _account_order(position: Position) -> tuple[str, str, str]:
    return (normalize_text(position.account_name), position.account_id, position.currency)


def positions_of(counterparties: Iterable[Counterparty]) -> list[Position]:
    """Every interpreted position (accounts without one are skipped), ordered by counterparty
    name and id, then account name and id, then currency.

    The counterparties are sorted once (a position carries its counterparty's name and id),
    then each one's few positions: at 50,000 counterparties that is a tenth of sorting every
    position by the whole key."""
    found: list[Position] = []
    for counterparty in sorted(counterparties, key=counterparty_order):
        held = [account.position for account in counterparty.accounts if account.position]
        if len(held) > 1:
            held.sort(key=_account_order)
        found.extend(held)
    return found


def filter_positions(
    positions: Iterable[AnyPosition],
    *,
    currencies: Collection[str] = (),
    kind: Kind | None = None,
    source: Source | None = None,
    side: Side | None = None,
    meanings: Collection[Meaning] = (),
    counterparty_id: str | None = None,
    include_zero: bool = False,
) -> list[AnyPosition]:
    """The positions matching every given filter, in the order given.

    `currencies` and `meanings` are any-of (empty: all), currencies case-insensitive. Zero
    positions are dropped unless `include_zero`, or unless `side` asks for `flat` ones or
    `meanings` for `zero` ones explicitly.
    """
    wanted = {code.strip().upper() for code in currencies}
    wanted_meanings = set(meanings)
    keep_zero = include_zero or side is Side.flat or Meaning.zero in wanted_meanings
    return [
        position
        for position in positions
        if (not wanted or position.currency.upper() in wanted)
        and (kind is None or position.kind == kind)
        and (source is None or position.source == source)
        and (side is None or position.side == side)
        and (not wanted_meanings or position.meaning in wanted_meanings)
        and (counterparty_id is None or position.counterparty_id == counterparty_id)
        and (keep_zero or position.side != Side.flat)
    ]


def totals(positions: Iterable[Position | models.Position]) -> list[CurrencyTotal]:
    """One exact total per currency, sorted by code.

    `assets` sums the positive amounts, `liabilities` is minus the sum of the negative ones
    (a positive figure), `net` = assets - liabilities. The sums by meaning keep the sign of
    their amounts: `overdraft` and `payable` are zero or negative.
    """
    # One pass: each amount goes to its currency's list for its side and for its meaning.
    sums: dict[str, dict[object, list[Decimal]]] = {}
    for position in positions:
        lists = sums.get(position.currency)
        if lists is None:
            lists = sums[position.currency] = defaultdict(list)
        lists[position.side].append(position.amount)
        lists[position.meaning].append(position.amount)
    return [_total(currency, sums[currency]) for currency in sorted(sums)]


def _total(currency: str, lists: dict[object, list[Decimal]]) -> CurrencyTotal:
    def total(key: object) -> Decimal:
        return sum_exact(lists.get(key, ()), currency)

    assets = total(Side.asset)
    liabilities = negate(total(Side.liability), currency)
    return CurrencyTotal(
        currency=currency,
        assets=assets,
        liabilities=liabilities,
        net=sum_exact([assets, liabilities.copy_negate()], currency),
        cash=total(Meaning.cash),
        overdraft=total(Meaning.overdraft),
        receivable=total(Meaning.receivable),
        payable=total(Meaning.payable),
    )
