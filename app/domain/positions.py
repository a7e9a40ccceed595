"""Positions across counterparties: listing order, the GET /positions filters, and totals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from decimal import Decimal

from app.domain.counterparties import normalize_text
from app.domain.models import (
    Counterparty,
    CurrencyTotal,
    Kind,
    Meaning,
    Position,
    Side,
    Source,
)
from app.domain.money import negate, sum_exact


def _position_order(position: Position) -> tuple[str, str, str, str, str]:
    return (
        normalize_text(position.counterparty_name),
        position.counterparty_id,
        normalize_text(position.account_name),
        position.account_id,
        position.currency,
    )


def positions_of(counterparties: Iterable[Counterparty]) -> list[Position]:
    """Every interpreted position (accounts without one are skipped), ordered by counterparty
    name and id, then account name and id, then currency."""
    found = [
        account.position
        for counterparty in counterparties
        for account in counterparty.accounts
        if account.position is not None
    ]
    return sorted(found, key=_position_order)


def filter_positions(
    positions: Iterable[Position],
    *,
    currencies: Collection[str] = (),
    kind: Kind | None = None,
    source: Source | None = None,
    side: Side | None = None,
    meanings: Collection[Meaning] = (),
    counterparty_id: str | None = None,
    include_zero: bool = False,
) -> list[Position]:
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


def totals(positions: Iterable[Position]) -> list[CurrencyTotal]:
    """One exact total per currency, sorted by code.

    `assets` sums the positive amounts, `liabilities` is minus the sum of the negative ones
    (a positive figure), `net` = assets - liabilities. The sums by meaning keep the sign of
    their amounts: `overdraft` and `payable` are zero or negative.
    """
    by_currency: dict[str, list[Position]] = defaultdict(list)
    for position in positions:
        by_currency[position.currency].append(position)
    return [_total(currency, by_currency[currency]) for currency in sorted(by_currency)]


def _total(currency: str, positions: list[Position]) -> CurrencyTotal:
    amounts = [position.amount for position in positions]
    assets = sum_exact((amount for amount in amounts if amount > 0), currency)
    liabilities = negate(
        sum_exact((amount for amount in amounts if amount < 0), currency), currency
    )
    return CurrencyTotal(
        currency=currency,
        assets=assets,
        liabilities=liabilities,
        net=sum_exact([assets, liabilities.copy_negate()], currency),
        cash=_meaning_sum(positions, Meaning.cash, currency),
        overdraft=_meaning_sum(positions, Meaning.overdraft, currency),
        receivable=_meaning_sum(positions, Meaning.receivable, currency),
        payable=_meaning_sum(positions, Meaning.payable, currency),
    )


def _meaning_sum(positions: list[Position], meaning: Meaning, currency: str) -> Decimal:
    return sum_exact(
        (position.amount for position in positions if position.meaning == meaning), currency
    )
