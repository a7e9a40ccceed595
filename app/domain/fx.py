"""Conversion into a reporting currency: rate policies, the legs of each rate, exact figures.

A policy says which published rates convert each currency. It is a set of *quotes* (a source
series, a treasury's own rate, or a peg), each linking two currencies; where two quotes link
the same pair, the first in the policy wins (a policy's own rates and pegs, then ARS's source,
then the BNR for the Romanian side, then the ECB). A currency converts into the report
currency along the shortest chain of quotes: direct (one quote, used as published or
inverted), or crossed through pivots (USD for ARS, EUR or RON on the Romanian side), every
leg shown. A chain is fixed by the policy alone, never by which source answers: a source that
is down or switched off makes its legs missing, it is never replaced by another.

Figures are exact: every published figure is a fraction (normalised to one unit: BNR's
per-100 HUF, the BCRA's per-1,000 VND), a rate is the product of its legs (a leg used
backwards divides), an amount is multiplied by it exactly, and each figure shown is rounded
once, half-even, to the report currency's minor units. A rate with no finite decimal form is
written rounded half-even to 28 significant digits, for reading only: nothing is computed
from that text. Never a float.

Pure: the fixings come in (`app.services.rates` picks them), the answer's parts go out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Context, Decimal, InvalidOperation, localcontext
from fractions import Fraction

from app.domain.models import (
    ConsolidatedTotal,
    ConvertedTotal,
    CurrencyTotal,
    RateEntry,
    RateLeg,
    ResponseWarning,
)
from app.domain.money import minor_units
from app.upstreams.fixings import Fixing

FX_RATE_MISSING = "fx_rate_missing"

# The connection a policy's own rates and pegs are named by in legs and warnings.
CONFIG_SOURCE = "config"
# Every rate source tesoro can ask, by the name their connection carries (`fx:<name>`).
RATE_SOURCES: tuple[str, ...] = ("bcra", "bnr", "ecb", "dolarapi")

# What each central bank publishes (2026), so a policy's chains are known without asking:
# the ECB quotes these per one EUR; the BNR prices each in RON (some per 100 units). Gold,
# silver and SDRs are left out: they are not money a treasury holds in a bank account.
ECB_CURRENCIES = frozenset(
    [
        "USD",
        "JPY",
        "CZK",
        "DKK",
        "GBP",
        "HUF",
        "PLN",
        "RON",
        "SEK",
        "CHF",
        "ISK",
        "NOK",
        "TRY",
        "AUD",
        "BRL",
        "CAD",
        "CNY",
        "HKD",
        "IDR",
        "ILS",
        "INR",
        "KRW",
        "MXN",
        "MYR",
        "NZD",
        "PHP",
        "SGD",
        "THB",
        "ZAR",
    ]
)
BNR_CURRENCIES = frozenset(
    [
        "AED",
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "CNY",
        "CZK",
        "DKK",
        "EGP",
        "EUR",
        "GBP",
        "HKD",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "ISK",
        "JPY",
        "KRW",
        "MDL",
        "MXN",
        "MYR",
        "NOK",
        "NZD",
        "PHP",
        "PLN",
        "RSD",
        "RUB",
        "SEK",
        "SGD",
        "THB",
        "TRY",
        "UAH",
        "USD",
        "ZAR",
    ]
)

# Among chains of one length, those through the earlier pivots here win: a HUF balance reaches
# USD through EUR (the ECB quotes both) rather than through RON (the BNR quotes both too).
PIVOTS: tuple[str, ...] = ("USD", "EUR", "RON")

# How a rate with no finite decimal form is written (and only written).
RATE_DIGITS = 28

_CODE = re.compile(r"^[A-Z][A-Z0-9]{2,7}$")
_ISO = re.compile(r"^[A-Z]{3}$")
_POLICY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


@dataclass(frozen=True, slots=True)
class Quote:
    """A rate a policy may use: `base` priced in `quote`, from a source series or from the
    policy itself (`source` "config", with its figure)."""

    source: str  # "bcra", "bnr", "ecb", "dolarapi" or "config"
    code: str  # the series asked of the source ("REF", "HUF", "MEP"); for config, its name
    base: str
    quote: str
    series: str  # as shown in legs: "BCRA:REF", "BNR:HUF", "ECB:USD", "MANUAL:USD/ARS", "PEG:USDT"
    published: Decimal | None = None  # config only: the policy's own figure
    unit: int = 1

    @property
    def connection(self) -> str:
        """How `sources` names the connection behind it (`fx:bcra`), or `config`."""
        return CONFIG_SOURCE if self.source == CONFIG_SOURCE else f"fx:{self.source}"

    @property
    def fetched(self) -> bool:
        """Whether its figure comes from a source (else the policy holds it)."""
        return self.source != CONFIG_SOURCE


@dataclass(frozen=True, slots=True)
class Step:
    """One leg of a chain: a quote, used from `base` to `quote` as published, or backwards."""

    quote: Quote
    inverted: bool


@dataclass(frozen=True)
class Policy:
    """A named set of quotes, the first for a pair winning."""

    name: str
    description: str
    quotes: tuple[Quote, ...]
    _links: dict[str, dict[str, Step]] = field(init=False, repr=False, compare=False)
    # Chains depend on the policy alone: found once per pair, then read (every question
    # asks for the same few).
    _chains: dict[tuple[str, str], tuple[Step, ...] | None] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        links: dict[str, dict[str, Step]] = {}
        for quote in self.quotes:
            for start, end, inverted in (
                (quote.base, quote.quote, False),
                (quote.quote, quote.base, True),
            ):
                links.setdefault(start, {}).setdefault(end, Step(quote, inverted))
        object.__setattr__(self, "_links", links)

    @property
    def currencies(self) -> frozenset[str]:
        """Every currency the policy can convert from or into."""
        return frozenset(self._links)

    def chain(self, currency: str, report: str) -> tuple[Step, ...] | None:
        """The legs from `currency` to `report` (none for the report currency itself), or
        None when no chain of the policy's quotes links them."""
        pair = (currency, report)
        if pair not in self._chains:
            self._chains[pair] = self._chain(currency, report)
        return self._chains[pair]

    def _chain(self, currency: str, report: str) -> tuple[Step, ...] | None:
        if currency == report:
            return ()
        if currency not in self._links or report not in self._links:
            return None
        # Distance to `report` from every currency, then the walk from `currency` that stays
        # on a shortest chain and takes the best-ranked pivot at each step.
        distance = {report: 0}
        frontier = [report]
        while frontier and currency not in distance:
            following: list[str] = []
            for node in frontier:
                for neighbour in self._links[node]:
                    if neighbour not in distance:
                        distance[neighbour] = distance[node] + 1
                        following.append(neighbour)
            frontier = following
        if currency not in distance:
            return None
        steps: list[Step] = []
        here = currency
        while here != report:
            closer = [n for n in self._links[here] if distance.get(n) == distance[here] - 1]
            nearest = min(closer, key=_pivot_rank)
            steps.append(self._links[here][nearest])
            here = nearest
        return tuple(steps)


def _pivot_rank(currency: str) -> tuple[int, str]:
    return (PIVOTS.index(currency) if currency in PIVOTS else len(PIVOTS), currency)


def _source_quote(source: str, code: str, base: str, quote: str, unit: int = 1) -> Quote:
    return Quote(source, code, base, quote, f"{source.upper()}:{code}", unit=unit)


BCRA_REF = _source_quote("bcra", "REF", "USD", "ARS")
DOLARAPI_MEP = _source_quote("dolarapi", "MEP", "USD", "ARS")
BNR_QUOTES = tuple(_source_quote("bnr", code, code, "RON") for code in sorted(BNR_CURRENCIES))
ECB_QUOTES = tuple(_source_quote("ecb", code, "EUR", code) for code in sorted(ECB_CURRENCIES))

OFFICIAL = Policy(
    "official",
    "ARS per USD at the BCRA's Comunicación A 3500 reference rate; RON at the National Bank "
    "of Romania's reference rates; EUR, USD and the other ECB currencies at the ECB's euro "
    "reference rates.",
    (BCRA_REF, *BNR_QUOTES, *ECB_QUOTES),
)
MARKET = Policy(
    "market",
    "As `official`, but ARS per USD at the MEP rate (dolarapi, a scraped community source: a "
    "market reference).",
    (DOLARAPI_MEP, *BNR_QUOTES, *ECB_QUOTES),
)
BUILT_IN: dict[str, Policy] = {OFFICIAL.name: OFFICIAL, MARKET.name: MARKET}


class PolicyConfigError(ValueError):
    """A configured policy cannot be used; the message says where and why."""


def _rate_figure(where: str, value: object) -> Decimal:
    if not isinstance(value, str):
        raise PolicyConfigError(f'{where}: write the rate as a decimal string, e.g. "1450.50"')
    try:
        figure = Decimal(value.strip())
    except InvalidOperation:
        raise PolicyConfigError(f"{where}: {value!r} is not a decimal number") from None
    if not figure.is_finite() or figure <= 0 or figure.adjusted() > 15 or figure.adjusted() < -15:
        raise PolicyConfigError(f"{where}: a rate must be a positive, finite, plausible number")
    return figure


def _policy(name: str, spec: object) -> Policy:
    if not _POLICY_NAME.match(name):
        raise PolicyConfigError(
            f"{name!r}: a policy name is lowercase letters, digits, '-' or '_' (up to 40)"
        )
    if name in BUILT_IN:
        raise PolicyConfigError(f"{name}: a built-in policy; choose another name")
    if not isinstance(spec, dict):
        raise PolicyConfigError(f"{name}: a policy is a JSON object")
    known = {"extends", "description", "source", "rates", "pegs"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise PolicyConfigError(
            f"{name}: unknown member {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    extends = spec.get("extends")
    if extends is not None and extends not in BUILT_IN:
        raise PolicyConfigError(
            f"{name}.extends: {extends!r} is not a built-in policy ({', '.join(BUILT_IN)})"
        )
    source = spec.get("source", "manual")
    if source != "manual":
        raise PolicyConfigError(f'{name}.source: only "manual" (the policy\'s own rates)')
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise PolicyConfigError(f"{name}.description: a string")
    own: list[Quote] = []
    rates = spec.get("rates", {})
    if not isinstance(rates, dict):
        raise PolicyConfigError(f'{name}.rates: an object such as {{"USD/ARS": "1450"}}')
    for pair, value in rates.items():
        where = f"{name}.rates[{pair!r}]"
        base, slash, quote = str(pair).partition("/")
        if not slash or not _CODE.match(base) or not _CODE.match(quote) or base == quote:
            raise PolicyConfigError(
                f"{where}: a pair is BASE/QUOTE (two different upper-case codes): "
                '"USD/ARS": "1450" is 1450 ARS for 1 USD'
            )
        own.append(
            Quote(CONFIG_SOURCE, pair, base, quote, f"MANUAL:{pair}", _rate_figure(where, value))
        )
    pegs = spec.get("pegs", {})
    if not isinstance(pegs, dict):
        raise PolicyConfigError(f'{name}.pegs: an object such as {{"USDT": "USD"}}')
    for pegged, target in pegs.items():
        where = f"{name}.pegs[{pegged!r}]"
        if not _CODE.match(str(pegged)) or not isinstance(target, str) or not _ISO.match(target):
            raise PolicyConfigError(
                f'{where}: a peg is CODE: ISO code, such as "USDT": "USD" (1 USDT = 1 USD)'
            )
        if pegged == target:
            raise PolicyConfigError(f"{where}: a currency cannot be pegged to itself")
        own.append(
            Quote(CONFIG_SOURCE, f"{pegged}/{target}", pegged, target, f"PEG:{pegged}", Decimal(1))
        )
    pairs = [frozenset((quote.base, quote.quote)) for quote in own]
    twice = sorted({"/".join(sorted(pair)) for pair in pairs if pairs.count(pair) > 1})
    if twice:
        raise PolicyConfigError(f"{name}: more than one rate or peg for {', '.join(twice)}")
    inherited = BUILT_IN[extends].quotes if extends is not None else ()
    if not own and not inherited:
        raise PolicyConfigError(f"{name}: give `extends`, `rates` or `pegs`")
    if not description:
        description = ", ".join(
            part
            for part in (
                f"as `{extends}`" if extends else "",
                f"own rates for {', '.join(sorted(rates))}" if rates else "",
                ", ".join(f"{p} pegged to {t}" for p, t in sorted(pegs.items())),
            )
            if part
        )
    return Policy(name, description, (*own, *inherited))


def parse_policies(text: str | Mapping[str, object]) -> dict[str, Policy]:
    """The configured policies (TESORO_FX_POLICIES: a JSON object, name → policy), without
    the built-in ones. Every mistake found is reported in one PolicyConfigError.

    A policy: `{"extends": "official" | "market", "description": "...", "source": "manual",
    "rates": {"USD/ARS": "1450"}, "pegs": {"USDT": "USD"}}`, every member optional (but one
    of `extends`, `rates`, `pegs`). A rate `"BASE/QUOTE": "figure"` is that many QUOTE for
    one BASE, as a decimal string; a peg converts its code at 1 for 1. The policy's own rates
    and pegs win over what it extends for the same pair.
    """
    if isinstance(text, str):
        try:
            loaded = json.loads(text)
        except ValueError:
            raise PolicyConfigError("not valid JSON") from None
    else:
        loaded = dict(text)
    if not isinstance(loaded, dict):
        raise PolicyConfigError('a JSON object: {"<name>": {...policy...}}')
    found: dict[str, Policy] = {}
    problems: list[str] = []
    for name, spec in loaded.items():
        try:
            found[str(name)] = _policy(str(name), spec)
        except PolicyConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise PolicyConfigError("; ".join(problems))
    return found


def policies_with(configured: Mapping[str, Policy]) -> dict[str, Policy]:
    """The built-in policies and the configured ones, by name."""
    return {**BUILT_IN, **configured}


def needed_quotes(policy: Policy, currencies: Iterable[str], report: str) -> list[Quote]:
    """The source quotes (never a policy's own) the chains of `currencies` use, each once."""
    found: dict[tuple[str, str], Quote] = {}
    for currency in currencies:
        for step in policy.chain(currency, report) or ():
            if step.quote.fetched:
                found.setdefault((step.quote.source, step.quote.code), step.quote)
    return list(found.values())


def report_currency_problem(policy: Policy, report: str) -> str | None:
    """Why `report` cannot be a report currency under `policy`, or None when it can."""
    if not _ISO.match(report) or minor_units(report) is None:
        return f"{report} is not an ISO 4217 currency code with minor units"
    if report not in policy.currencies:
        return f"the policy {policy.name} cannot convert into {report}"
    return None


# -- figures -----------------------------------------------------------------------------


def fraction_of(figure: Decimal) -> Fraction:
    """A decimal as the exact fraction it denotes."""
    return Fraction(figure)


def per_unit(fixing: Fixing) -> Fraction:
    """The fixing's quote currency per one unit of its base, exactly."""
    return Fraction(fixing.published) / fixing.unit


def round_half_even(value: Fraction, places: int) -> Decimal:
    """`value` rounded once, half-even, to `places` decimals (never a -0)."""
    scaled = round(value * 10**places)  # Fraction rounds half to even
    digits = tuple(int(d) for d in str(abs(scaled)))
    return Decimal((1 if scaled < 0 else 0, digits, -places))


def rate_text(value: Fraction) -> str:
    """A rate as a decimal string: exact when it has a finite decimal form, else rounded
    half-even to 28 significant digits."""
    denominator = value.denominator
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    numerator = Decimal(value.numerator)
    if denominator == 1:
        # Finite: divide with enough digits for it to be exact.
        digits = len(str(value.numerator)) + 4 * len(str(value.denominator)) + 2
        with localcontext(Context(prec=digits)):
            exact = numerator / Decimal(value.denominator)
        return format(exact.normalize(Context(prec=digits)), "f")
    # Decimal division is correctly rounded to the context's precision.
    with localcontext(Context(prec=RATE_DIGITS)):
        rounded = numerator / Decimal(value.denominator)
    return format(rounded, "f")


# -- rates with their legs -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FoundLeg:
    step: Step
    fixing: Fixing


@dataclass(frozen=True, slots=True)
class Rate:
    """How one currency converts: its legs (each with the fixing used) and the exact rate."""

    currency: str
    legs: tuple[FoundLeg, ...]
    value: Fraction


@dataclass(frozen=True, slots=True)
class NoRate:
    """Why a currency does not convert, and the connection to blame (for the warning)."""

    currency: str
    reason: str
    connection: str


def resolve(
    policy: Policy,
    currency: str,
    report: str,
    found: Mapping[tuple[str, str], Fixing | Exception | None],
    *,
    requested: date,
    max_age_days: int,
) -> Rate | NoRate:
    """The rate of `currency` in `report` on `requested`, from the fixings found for each
    source quote; a leg with no usable fixing makes the whole rate missing."""
    steps = policy.chain(currency, report)
    if steps is None:
        return NoRate(
            currency,
            f"the policy {policy.name} has no rate linking {currency} to {report}"
            + (
                " (no source publishes it; a policy may peg it)" if not _ISO.match(currency) else ""
            ),
            CONFIG_SOURCE,
        )
    legs: list[FoundLeg] = []
    value = Fraction(1)
    oldest = requested - timedelta(days=max_age_days)
    for step in steps:
        quote = step.quote
        fixing: Fixing | Exception | None
        if quote.fetched:
            fixing = found.get((quote.source, quote.code))
        else:
            assert quote.published is not None
            fixing = Fixing(
                CONFIG_SOURCE, quote.series, quote.base, quote.quote, quote.published, 1, requested
            )
        where = f"{quote.series} ({quote.base} in {quote.quote})"
        if isinstance(fixing, Exception):
            return NoRate(
                currency, f"{where}: {quote.connection} failed: {fixing}", quote.connection
            )
        if fixing is None:
            return NoRate(
                currency,
                f"{where}: no fixing from {oldest.isoformat()} to {requested.isoformat()} "
                f"(at most {max_age_days} days before the date asked)",
                quote.connection,
            )
        problem = _fixing_problem(quote, fixing, requested, oldest)
        if problem is not None:
            return NoRate(currency, f"{where}: {problem}", quote.connection)
        legs.append(FoundLeg(step, fixing))
        rate = per_unit(fixing)
        value *= 1 / rate if step.inverted else rate
    return Rate(currency, tuple(legs), value)


def _fixing_problem(quote: Quote, fixing: Fixing, requested: date, oldest: date) -> str | None:
    """Why a fixing a source gave cannot be used for this leg (never trusted blindly)."""
    if (fixing.base, fixing.quote) != (quote.base, quote.quote):
        return f"the source answered {fixing.base} in {fixing.quote}"
    if not fixing.published.is_finite() or fixing.published <= 0 or fixing.unit < 1:
        return f"the source published an unusable rate ({fixing.published} per {fixing.unit})"
    if fixing.rate_date > requested:
        return f"the fixing is dated {fixing.rate_date.isoformat()}, after the date asked"
    if fixing.rate_date < oldest:
        return (
            f"the latest fixing ({fixing.rate_date.isoformat()}) is more than "
            f"{(requested - oldest).days} days before {requested.isoformat()}"
        )
    return None


def rate_entry(rate: Rate, requested: date) -> RateEntry:
    """A rate as the answer shows it, every leg with its fixing."""
    return RateEntry(
        currency=rate.currency,
        rate=rate_text(rate.value),
        legs=[
            RateLeg(
                source=leg.step.quote.connection,
                series=leg.fixing.series if leg.step.quote.fetched else leg.step.quote.series,
                base=leg.fixing.base,
                quote=leg.fixing.quote,
                published=format(leg.fixing.published, "f"),
                unit=leg.fixing.unit,
                inverted=leg.step.inverted,
                rate_date=leg.fixing.rate_date,
                requested_date=requested,
            )
            for leg in rate.legs
        ],
    )


def missing_warning(
    missing: NoRate, report: str, policy: Policy, requested: date
) -> ResponseWarning:
    return ResponseWarning(
        code=FX_RATE_MISSING,
        message=f"{missing.currency} is not converted into {report} under the policy "
        f"{policy.name} for {requested.isoformat()}: {missing.reason}",
        source=missing.connection,
    )


_FIELDS = ("assets", "liabilities", "net", "cash", "overdraft", "receivable", "payable")


@dataclass(frozen=True)
class Conversion:
    """The totals with their `converted` member, the consolidated figure and the warnings."""

    totals: list[CurrencyTotal]
    consolidated: ConsolidatedTotal
    warnings: list[ResponseWarning]


def convert_totals(
    totals: Sequence[CurrencyTotal],
    rates: Mapping[str, Rate | NoRate],
    *,
    report: str,
    policy: Policy,
    requested: date,
) -> Conversion:
    """Each total converted at its currency's rate (null when it has none), and their sum:
    every product exact, the sum exact, each figure rounded once."""
    places = minor_units(report)
    assert places is not None  # report currencies are ISO with minor units (checked before)
    sums = dict.fromkeys(_FIELDS, Fraction(0))
    converted: list[CurrencyTotal] = []
    entries: list[RateEntry] = []
    missing: list[NoRate] = []
    for total in totals:
        rate = rates.get(total.currency)
        if rate is None:
            rate = NoRate(total.currency, "no rate was looked up", CONFIG_SOURCE)
        if isinstance(rate, NoRate):
            missing.append(rate)
            converted.append(total.model_copy(update={"converted": None}))
            continue
        exact = {name: fraction_of(getattr(total, name)) * rate.value for name in _FIELDS}
        for name in _FIELDS:
            sums[name] += exact[name]
        shown = {name: round_half_even(exact[name], places) for name in _FIELDS}
        converted.append(
            total.model_copy(
                update={"converted": ConvertedTotal(**shown, rate=rate_text(rate.value))}
            )
        )
        entries.append(rate_entry(rate, requested))
    consolidated = ConsolidatedTotal(
        currency=report,
        **{name: round_half_even(sums[name], places) for name in _FIELDS},
        complete=not missing,
        missing_currencies=sorted(m.currency for m in missing),
        policy=policy.name,
        rate_date=requested,
        rates=entries,
    )
    return Conversion(
        converted,
        consolidated,
        [missing_warning(m, report, policy, requested) for m in missing],
    )
