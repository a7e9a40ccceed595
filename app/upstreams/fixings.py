"""What every exchange-rate source adapter returns: published fixings, exact, as written.

The four rate sources (the BCRA, the National Bank of Romania, the ECB and dolarapi) are
upstreams like FinSync and Finqware: one module each (`bcra.py`, `bnr.py`, `ecb.py`,
`dolarapi.py`), through the same `send` path, raising the same `UpstreamError` hierarchy.
Each one implements `RateSource`; the rates service picks fixings through the cache and the
domain (`app.domain.fx`) converts with them.

A fixing says: `published` units of `quote` buy `unit` units of `base`, as fixed on
`rate_date`. It is kept exactly as the source wrote it (a Decimal built from the text or the
JSON number, never a float, trailing zeros kept); normalising to one unit is the domain's work.

Examples:
- BCRA Comunicación A 3500 on 2026-03-19: series `BCRA:REF`, base USD, quote ARS,
  published 1395.51420000, unit 1.
- BCRA Vietnamese dong "(C/1.000 UNIDADES)": series `BCRA:VND`, base VND, quote ARS, unit 1000.
- BNR `<Rate currency="HUF" multiplier="100">1.4430</Rate>`: series `BNR:HUF`, base HUF,
  quote RON, published 1.4430, unit 100.
- ECB `D.USD.EUR.SP00.A` 1.1489: series `ECB:USD`, base EUR, quote USD, published 1.1489, unit 1.
- dolarapi `bolsa` (MEP) venta 1545.3: series `DOLARAPI:MEP`, base USD, quote ARS, unit 1,
  rate_date the day of `fechaActualizacion` in Buenos Aires (a scrape time, not a market time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import ClassVar, Protocol

import httpx2

from app.upstreams.http import NO_RETRIES, RetryPolicy


@dataclass(frozen=True, slots=True)
class Fixing:
    """One published rate: `published` units of `quote` for `unit` units of `base`."""

    source: str  # "bcra", "bnr", "ecb", "dolarapi": the connection is `fx:<source>`
    series: str  # "BCRA:REF", "BNR:HUF", "ECB:USD", "DOLARAPI:MEP"
    base: str  # the currency priced (ISO 4217 code as tesoro names it)
    quote: str  # the currency the price is in
    published: Decimal  # exactly as the source wrote it
    unit: int  # how many units of `base` the published figure is for (>= 1)
    rate_date: date  # the day of the fixing (never after the day asked for)


class RateSource(Protocol):
    """An exchange-rate source adapter."""

    source: str  # "bcra", "bnr", "ecb" or "dolarapi"

    def series(self) -> frozenset[str]:
        """The series codes this adapter can be asked for (such as "REF", "USD", "MEP")."""
        ...

    def today(self, now: datetime) -> date:
        """Today in the source's own time zone (the BCRA refuses a date after today in
        Buenos Aires; the ECB answers an old fixing for a future date): every request for a
        later date is clamped to this."""
        ...

    async def fixing(self, code: str, *, on_or_before: date, not_before: date) -> Fixing | None:
        """The newest fixing of series `code` dated on or before `on_or_before` (clamped to
        `today`) and not before `not_before`; None when the source published none in that
        window (weekends, holidays, a series not quoted then).

        Raises an `UpstreamError` when the source cannot be read or answers nonsense for this
        series (an HTML page with status 200, a rate of zero or below, a fixing dated after the
        day asked for, the same series twice on one date with different values): such a fixing
        is never returned."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def day_in(zone: tzinfo, now: datetime) -> date:
    """The date in `zone` at `now` (a naive `now` is taken as UTC)."""
    aware = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    return aware.astimezone(zone).date()


class FixingClient:
    """What every rate source adapter holds alike: an injected ``httpx2.AsyncClient`` whose
    base URL is the source's, its retry policy, a clock, its series codes and the time zone
    its days are counted in. Each adapter adds its own `fixing`."""

    source: str
    codes: ClassVar[frozenset[str]]
    time_zone: ClassVar[tzinfo]

    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        retries: RetryPolicy = NO_RETRIES,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._http = http
        self._retries = retries
        self._clock = clock

    def series(self) -> frozenset[str]:
        return self.codes

    def today(self, now: datetime) -> date:
        return day_in(self.time_zone, now)
