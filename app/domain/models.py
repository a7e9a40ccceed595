"""The public response models: every field a caller of tesoro sees, described once."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    MISSING,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

MONEY_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
CURRENCY_PATTERN = r"^[A-Z0-9]{3,8}$"
# Currencies asked for in a query are matched case-insensitively.
CURRENCY_QUERY_PATTERN = r"^[A-Za-z0-9]{3,8}$"


def _money_text(value: Decimal) -> str:
    # Fixed-point always: pydantic would otherwise write Decimal("1E+2") as "1E+2".
    return format(value, "f")


Money = Annotated[
    Decimal,
    PlainSerializer(_money_text, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": MONEY_PATTERN,
            "description": "Exact decimal amount as a string, never a float.",
            "examples": ["1520.50"],
        }
    ),
]
Currency = Annotated[
    str,
    Field(
        pattern=CURRENCY_PATTERN,
        description="ISO 4217 code, or the upstream's own code when it is not ISO (e.g. USDT).",
        examples=["ARS"],
    ),
]


class _Model(BaseModel):
    # Every field is always sent (nulls included), so the response schema marks defaulted
    # fields required too: generated clients then get `str | None`, not `str | None | Unset`.
    model_config = ConfigDict(
        frozen=True, use_enum_values=False, json_schema_serialization_defaults_required=True
    )


class Kind(StrEnum):
    """`internal`: the company's own cash, wallets and banks; `external`: someone it deals with."""

    internal = "internal"
    external = "external"


class Source(StrEnum):
    """The upstream a counterparty or position comes from."""

    finsync = "finsync"
    finqware = "finqware"


class Side(StrEnum):
    """`asset` (amount > 0), `liability` (amount < 0) or `flat` (zero)."""

    asset = "asset"
    liability = "liability"
    flat = "flat"


class Meaning(StrEnum):
    """What the signed amount is for the company.

    `cash` (held), `overdraft` (an internal account below zero), `receivable` (an external
    counterparty owes the company), `payable` (the company owes an external counterparty),
    `zero`.
    """

    cash = "cash"
    overdraft = "overdraft"
    receivable = "receivable"
    payable = "payable"
    zero = "zero"


class SourceStatus(StrEnum):
    """`ok`: fresh; `stale`: the upstream failed and the last good data is served;
    `unavailable`: the upstream failed and nothing usable is cached."""

    ok = "ok"
    stale = "stale"
    unavailable = "unavailable"


class SourceErrorCode(StrEnum):
    """Why an upstream connection failed: a short, stable code."""

    timeout = "timeout"
    upstream_error = "upstream_error"
    bad_response = "bad_response"
    rate_limited = "rate_limited"
    unauthorized = "unauthorized"
    consent_expired = "consent_expired"
    rejected = "rejected"
    not_found = "not_found"
    outcome_unknown = "outcome_unknown"
    inconsistent_read = "inconsistent_read"


class SourceError(_Model):
    """Why an upstream connection is not `ok`."""

    code: SourceErrorCode = Field(description="Stable reason code.")
    message: str = Field(description="Short and human; never contains a secret.")


class ReportedFigure(_Model):
    """The upstream figure exactly as received, before interpretation."""

    amount: Money = Field(
        description="The upstream's figure as sent, before rounding and before tesoro's sign rule."
    )
    client_type: int | None = Field(
        default=None, description="FinSync client type (0 internal, 1 external); null for Finqware."
    )
    credit_debit_indicator: str | None = Field(
        default=None, description="Finqware's indicator (`credit` or `debit`); null for FinSync."
    )


class BalanceEntry(_Model):
    """One Finqware balance entry of an account, interpreted."""

    id: str = Field(description="Finqware's id of this balance entry.")
    type: str = Field(
        description="ISO 20022 balance type, e.g. `InterimBooked`.", examples=["InterimBooked"]
    )
    amount: Money = Field(description="Signed from the company's point of view.")
    currency: Currency
    credit_debit_indicator: str = Field(description="As sent: `credit` or `debit`.")
    credit_limit_included: bool = Field(
        description="True when the amount includes the credit line, so it is never used for "
        "`amount` or `available`. Also true when the bank's flag could not be read (a "
        "`unreadable_field` warning says so): such an entry is never used either."
    )
    credit_line: Money | None = Field(
        default=None,
        description="The credit line this entry reports in the account's currency (the sum "
        "of its lines when the bank lists several), or null: none sent, a line in another "
        "currency, or one that could not be read (a warning says which).",
    )
    reported: Money = Field(description="The amount as Finqware sent it (always non-negative).")
    native_date: date | None = Field(
        default=None,
        description="The bank's own date for this balance (`native_date`), as the bank wrote "
        "it; null when absent or unreadable.",
    )
    native_timestamp: AwareDatetime | None = Field(
        default=None,
        description="The bank's own time for this balance (`native_timestamp`), in UTC; null "
        "when absent or unreadable.",
    )
    fetched_at: AwareDatetime = Field(
        description="Finqware's clock: when Finqware queried the bank for this entry (its "
        "`timestamp`, read as UTC). Not when tesoro fetched it (that is the position's "
        "`fetched_at`). When Finqware's timestamp cannot be read, tesoro's fetch time, with "
        "a warning."
    )


class Position(_Model):
    """One account's balance in one currency, already interpreted."""

    counterparty_id: str = Field(
        description="The counterparty the account belongs to.", examples=["finsync:42"]
    )
    counterparty_name: str = Field(description="The counterparty's name.")
    kind: Kind = Field(description="The counterparty's kind.")
    source: Source = Field(description="The upstream the figure comes from.")
    account_id: str = Field(
        description="`finsync:<account id>` or `finqware:<Finqware account id>`.",
        examples=["finsync:901"],
    )
    account_name: str = Field(
        description="The account's name (for Finqware: the bank's name, nickname or IBAN)."
    )
    currency: Currency
    amount: Money = Field(
        description="Signed from the company's point of view: positive is had or owed to it, "
        "negative is owed by it. Zero is `0` scaled to the currency, never `-0`."
    )
    side: Side = Field(description="`asset` (amount > 0), `liability` (< 0) or `flat` (zero).")
    meaning: Meaning = Field(description="What the amount is for the company.")
    available: Money | None = Field(
        default=None,
        description="Finqware: the available balance, signed, without the credit line: the "
        "first type of the configured available order among entries that do not include the "
        "credit line; null for FinSync or when absent.",
    )
    available_with_credit_line: Money | None = Field(
        default=None,
        description="Finqware: what the company can spend counting its credit line: the first "
        "type of the available order among the entries with `credit_limit_included: true`; "
        "failing that, `available + credit_line` when both are known; else null.",
    )
    balance_type: str | None = Field(
        default=None,
        description="Finqware: the balance type `amount` comes from; null for FinSync.",
    )
    balance_type_fallback: bool = Field(
        default=False,
        description="True when no type of the configured current order was present and "
        "`amount` comes from the fallback order (by default Expected, InterimAvailable, "
        "ClosingAvailable).",
    )
    balances: list[BalanceEntry] = Field(
        default_factory=list,
        description="Finqware: every balance entry of the account, interpreted.",
    )
    credit_line: Money | None = Field(
        default=None,
        description="The credit line the bank reports for the account, in its currency (the "
        "sum of the lines when it lists several), or null: none sent, only lines in another "
        "currency, or a shape that could not be read (a warning names the account).",
    )
    reported: ReportedFigure = Field(description="The upstream figure as received.")
    as_of: AwareDatetime | None = Field(
        default=None,
        description="The upstream's clock: when the upstream says the figure was true. "
        "FinSync: the account's `updated_at`. Finqware: the picked entry's `native_timestamp`, "
        "else its `native_date` at 00:00 UTC, else when Finqware queried the bank. It can be "
        "days older than `fetched_at`; null when FinSync sends no readable `updated_at`.",
    )
    fetched_at: AwareDatetime = Field(
        description="tesoro's clock: when tesoro received the upstream answer this figure "
        "comes from (the same for every position of one connection's snapshot)."
    )


class Account(_Model):
    """One account of a counterparty, in one currency."""

    id: str = Field(
        description="`finsync:<account id>` or `finqware:<Finqware account id>`.",
        examples=["finsync:901"],
    )
    name: str = Field(description="The account's name.")
    currency: Currency
    position: Position | None = Field(
        description="The interpreted position; null when it could not be interpreted, or "
        "when the same account is counted elsewhere in the answer (a bank account reached "
        "through two consents, a FinSync account listed under two clients: it counts once, "
        "where a `duplicate_account` warning says); see the response's `warnings`."
    )


class Counterparty(_Model):
    """A FinSync client or a Finqware bank connection, with its accounts."""

    id: str = Field(
        examples=["finsync:42"], description="`finsync:<client id>` or `finqware:<consent key>`."
    )
    source: Source = Field(description="The upstream the counterparty comes from.")
    kind: Kind = Field(description="`internal` (the company's own) or `external`.")
    name: str = Field(description="The counterparty's name.", examples=["Caja central"])
    description: str | None = Field(default=None, description="Free text, or null.")
    accounts: list[Account] = Field(description="Its accounts, each with its position.")
    status: SourceStatus = Field(
        default=SourceStatus.ok,
        description="The state of the connection the counterparty comes from, as in `sources`: "
        "a bank connection that cannot be read is still listed, `unavailable`, with no "
        "accounts.",
    )
    error: SourceError | None = Field(
        default=None, description="Why its connection is not `ok` (for example `consent_expired`)."
    )


class SourceInfo(_Model):
    """The state of one upstream connection behind an answer."""

    source: str = Field(
        description="`finsync` or `finqware:<consent key>`; a rate source (`fx:bcra`, "
        "`fx:bnr`, `fx:ecb`, `fx:dolarapi`) when the answer converts with its rates.",
        examples=["finqware:bt-main"],
    )
    status: SourceStatus = Field(description="Whether the data served is fresh.")
    fetched_at: AwareDatetime | None = Field(
        description="tesoro's clock: when tesoro received the data served from this connection. "
        "Its age is the response's `Date` minus this (no body counts time)."
    )
    error: SourceError | None = Field(default=None, description="Why the connection is not `ok`.")


class ResponseWarning(_Model):
    """Something the upstream sent that could not be used as it stands (never guessed).

    Mostly an account left out of the positions; `account_details_unavailable` says a bank
    connection's accounts are named by their id because Finqware did not give their names;
    `duplicate_account` and `conflicting_record` say where one account, or one record sent
    twice, was counted once.
    """

    code: str = Field(
        description="Stable code. An account left out: `unknown_client_type`, "
        "`unknown_credit_debit_indicator`, `invalid_amount`, `invalid_currency`, "
        "`invalid_balance_type`, `no_usable_balance`. A record left out: `unreadable_record`. "
        "Only a field lost: `unreadable_field` (an optional field that could not be read is "
        "null or ignored), `credit_line_other_currency`, `account_details_unavailable`. "
        "About a connection: `consent_expiring`. One count per account: "
        "`duplicate_account` (the same account listed twice, under two bank consents by IBAN "
        "or Finqware account id, or under two FinSync clients, counts once: from the copy "
        "with the latest balance; the other copy is listed with `position: null`; the "
        "message names both connections or clients and both account ids), "
        "`conflicting_record` (two copies of one record that disagree: a FinSync client or "
        "account listed twice with different content, a Finqware account listed twice with "
        "different details, two Finqware balances of one type for the same moment; one is "
        "chosen by a fixed rule the message names). About a conversion into a report "
        "currency: `fx_rate_missing` (a currency has no rate: the message names it and why; "
        "it is left out of the consolidated sums). New codes may be added within v1.",
        examples=["unknown_client_type"],
    )
    message: str = Field(description="What was found, for a human.")
    source: str = Field(
        description="The connection: `finsync` or `finqware:<consent key>`; for "
        "`fx_rate_missing`, the rate source to blame (`fx:<source>`) or `config` (the "
        "policy has no rate for the currency).",
        examples=["finsync"],
    )
    counterparty_id: str | None = Field(
        default=None, description="The counterparty concerned, when known."
    )
    account_id: str | None = Field(default=None, description="The account concerned, when known.")


class Meta(_Model):
    sources: list[SourceInfo] = Field(
        description="One entry per upstream connection the answer depends on (`finsync`, "
        "`finqware:<consent key>`): a `source`, `kind` or `counterparty_id` filter narrows "
        "them, and only those connections are asked. The rate sources a conversion needs "
        "(`fx:<source>`) follow them, and only those."
    )
    complete: bool = Field(description="False when any of those connections is `unavailable`.")
    warnings: list[ResponseWarning] = Field(
        description="What the upstreams sent that could not be used as it stands (accounts or "
        "fields left out, see `ResponseWarning.code`), and consents about to expire."
    )


class CounterpartyPage(Meta):
    """One page of counterparties, with the state of every connection."""

    items: list[Counterparty] = Field(description="This page's counterparties.")
    page: int = Field(description="The page number, from 1.")
    page_size: int = Field(description="The page size asked for.")
    total: int = Field(description="Counterparties matching the filters, over all pages.")


class CounterpartyDetail(Counterparty):
    """One counterparty, with the state of the connection it came from."""

    sources: list[SourceInfo] = Field(
        description="The connection the counterparty comes from: `finsync` or "
        "`finqware:<consent key>`."
    )
    complete: bool = Field(description="False when the connection is `unavailable`.")
    warnings: list[ResponseWarning] = Field(
        description="What could not be used as it stands for this counterparty (see "
        "`ResponseWarning.code`), and its consent about to expire."
    )


def _only_when_asked(*names: str) -> ConfigDict:
    """Members written only when the question asks for them (`report_currency`): absent from
    every other answer, so those keep their bytes and ETags; the schema marks them optional."""

    def drop_from_required(schema: dict[str, Any]) -> None:
        required = schema.get("required")
        if isinstance(required, list):
            schema["required"] = [name for name in required if name not in names]

    return ConfigDict(json_schema_extra=drop_from_required)


class ConvertedTotal(_Model):
    """One currency's totals in the report currency: each figure converted exactly at `rate`
    and rounded once, half-even, to the report currency's minor units (so `net` may differ by
    a minor unit from `assets` - `liabilities` as shown)."""

    assets: Money = Field(description="`assets` in the report currency.")
    liabilities: Money = Field(description="`liabilities` in the report currency.")
    net: Money = Field(description="`net` in the report currency.")
    cash: Money = Field(description="`cash` in the report currency.")
    overdraft: Money = Field(description="`overdraft` in the report currency.")
    receivable: Money = Field(description="`receivable` in the report currency.")
    payable: Money = Field(description="`payable` in the report currency.")
    rate: str = Field(
        pattern=MONEY_PATTERN,
        description="Report currency per one unit of this currency (the product of the legs "
        "in `consolidated.rates`): exact when it has a finite decimal form, else rounded "
        "half-even to 28 significant digits, for reading only.",
        examples=["0.0007165876228416286390153648"],
    )


class CurrencyTotal(_Model):
    """The totals of one currency over every matching position, in exact decimal."""

    model_config = _only_when_asked("converted")

    currency: Currency
    assets: Money = Field(description="Sum of positive amounts.")
    liabilities: Money = Field(description="Sum of negative amounts, as a positive figure.")
    net: Money = Field(description="assets - liabilities.")
    cash: Money = Field(description="Sum of `cash` amounts (>= 0).")
    overdraft: Money = Field(description="Sum of `overdraft` amounts, signed (<= 0).")
    receivable: Money = Field(description="Sum of `receivable` amounts (>= 0).")
    payable: Money = Field(description="Sum of `payable` amounts, signed (<= 0).")
    converted: ConvertedTotal | MISSING | None = Field(
        default=MISSING,
        description="Only when `report_currency` is asked: these totals in the report "
        "currency, or null when this currency has no rate (an `fx_rate_missing` warning "
        "says why).",
    )


class RateLeg(_Model):
    """One published rate a conversion used, with the fixing date it came from."""

    source: str = Field(
        description="The rate source's connection as `sources` names it (`fx:bcra`, "
        "`fx:bnr`, `fx:ecb`, `fx:dolarapi`), or `config` for a policy's own rate or peg.",
        examples=["fx:bcra"],
    )
    series: str = Field(
        description="The published series: `BCRA:REF` (Comunicación A 3500), `BNR:<code>`, "
        "`ECB:<code>`, `DOLARAPI:MEP`, or `MANUAL:<base>/<quote>` and `PEG:<code>` for a "
        "policy's own.",
        examples=["BCRA:REF"],
    )
    base: Currency = Field(description="The currency priced.")
    quote: Currency = Field(description="The currency the price is in.")
    published: str = Field(
        pattern=MONEY_PATTERN,
        description="The figure as the source wrote it: `published` units of `quote` for "
        "`unit` units of `base`.",
        examples=["1395.51420000"],
    )
    unit: int = Field(
        ge=1, description="Units of `base` the figure is for (BNR's 100 HUF, 1 mostly)."
    )
    inverted: bool = Field(
        description="True when the conversion goes from `quote` to `base` (divides by the "
        "figure), false when from `base` to `quote` (multiplies)."
    )
    rate_date: date = Field(
        description="The fixing used: the date asked, or the latest published before it "
        "(weekends, holidays); for a policy's own rate, the date asked."
    )
    requested_date: date = Field(description="The date asked (`rate_date` of the question).")


class RateEntry(_Model):
    """How one currency converts into the report currency."""

    currency: Currency
    rate: str = Field(
        pattern=MONEY_PATTERN,
        description="Report currency per one unit of `currency`: exact when it has a finite "
        "decimal form, else rounded half-even to 28 significant digits, for reading only.",
        examples=["0.0007165876228416286390153648"],
    )
    legs: list[RateLeg] = Field(
        description="Every published rate used, from `currency` to the report currency, in "
        "order (a cross rate has one per pivot crossed); none for the report currency itself."
    )


class ConsolidatedTotal(_Model):
    """Everything in one currency: the totals of every convertible currency, summed."""

    currency: Currency = Field(description="The report currency.")
    assets: Money = Field(
        description="The exact sum of every convertible currency's converted `assets`, "
        "rounded once (a shown part may differ from its share by rounding)."
    )
    liabilities: Money = Field(description="As `assets`, for `liabilities`.")
    net: Money = Field(description="As `assets`, for `net`.")
    cash: Money = Field(description="As `assets`, for `cash`.")
    overdraft: Money = Field(description="As `assets`, for `overdraft`.")
    receivable: Money = Field(description="As `assets`, for `receivable`.")
    payable: Money = Field(description="As `assets`, for `payable`.")
    complete: bool = Field(
        description="False when any currency of the totals had no rate: the sums leave it "
        "out. (The answer's own `complete` speaks of the positions.)"
    )
    missing_currencies: list[Currency] = Field(
        description="The currencies left out for want of a rate (each with a warning)."
    )
    policy: str = Field(description="The rate policy used.", examples=["official"])
    rate_date: date = Field(description="The date asked, or today in UTC.")
    rates: list[RateEntry] = Field(description="One entry per converted currency.")


class PositionsResponse(Meta):
    """Every interpreted position that matches the filters, with totals per currency."""

    model_config = _only_when_asked("consolidated")

    positions: list[Position] = Field(
        description="This page of the matching positions, one per account and currency."
    )
    totals: list[CurrencyTotal] = Field(
        description="One entry per currency over every matching position, not only this page."
    )
    total: int = Field(description="Positions matching the filters, over all pages.")
    page: int = Field(description="The page number, from 1.")
    page_size: int = Field(description="The page size asked for.")
    consolidated: ConsolidatedTotal | MISSING = Field(
        default=MISSING,
        description="Only when `report_currency` is asked: every total in that currency, "
        "with the rate of each currency and its legs.",
    )
    generated_at: AwareDatetime = Field(
        description="tesoro's clock: when the data state behind this answer came to be (the "
        "latest `fetched_at` or status change among its `sources`). The same data gives the "
        "same answer, byte for byte: a source's age is the response's `Date` minus its "
        "`fetched_at`."
    )


class RatesResponse(Meta):
    """The rates of some currencies into one, each with its legs (`GET /rates`)."""

    complete: bool = Field(
        description="False when any currency asked has no rate (see `missing_currencies` "
        "and the `fx_rate_missing` warnings)."
    )
    currency: Currency = Field(description="The currency the rates are in (`to`).")
    policy: str = Field(description="The rate policy used.", examples=["official"])
    rate_date: date = Field(description="The date asked, or today in UTC.")
    rates: list[RateEntry] = Field(description="One entry per currency that has a rate.")
    missing_currencies: list[Currency] = Field(
        description="The currencies asked that have no rate."
    )
    generated_at: AwareDatetime = Field(
        description="tesoro's clock: when the data state behind this answer came to be (the "
        "latest `fetched_at` or status change among its `sources`). The same data gives the "
        "same answer, byte for byte: a source's age is the response's `Date` minus its "
        "`fetched_at`."
    )


class CurrencyDelta(_Model):
    """How a currency's net changed."""

    currency: Currency
    delta: Money = Field(description="The change of the net (after - before), signed.")


class PositionChange(_Model):
    """An account whose figure differs between two instants, as tesoro observed it."""

    counterparty_id: str = Field(description="The counterparty the account belongs to.")
    account_id: str = Field(description="The account, e.g. `finsync:901`.")
    currency: Currency
    before: Money | None = Field(description="Its amount then; null if it did not exist.")
    after: Money | None = Field(description="Its amount now; null if it is gone.")
    delta: Money = Field(description="after - before (a missing side counts as zero).")
    changed_at: AwareDatetime = Field(
        description="When tesoro observed its last change in the window."
    )


class ChangesResponse(Meta):
    """What changed between two instants, largest change first."""

    changes: list[PositionChange] = Field(
        description="Every matching account whose figure differs, ordered by the size of "
        "the change (largest first), then counterparty, account and currency."
    )
    totals_delta: list[CurrencyDelta] = Field(
        description="The change of the net per currency over the listed changes."
    )
    since: AwareDatetime = Field(description="The first instant compared.")
    until: AwareDatetime = Field(description="The second instant compared.")


class HistoryPoint(_Model):
    """The totals as last observed at or before one interval end."""

    model_config = _only_when_asked("consolidated")

    at: AwareDatetime = Field(description="The interval's end (the last point: `to`).")
    totals: list[CurrencyTotal] = Field(
        description="One entry per currency over every matching position then."
    )
    consolidated: ConsolidatedTotal | MISSING = Field(
        default=MISSING,
        description="Only when `report_currency` is asked: the point's totals in that "
        "currency, at the rates of `rate_date` (the same for every point).",
    )


class HistoryGap(_Model):
    """A stretch history cannot vouch for."""

    source: str | None = Field(
        description="The connection (as in `sources`); null when tesoro itself was not running."
    )
    started_at: AwareDatetime = Field(description="When the stretch starts.")
    ended_at: AwareDatetime = Field(description="When it ends.")
    reason: Literal["unobserved", "store_unavailable", "not_running"] = Field(
        description="`unobserved` (longer than twice its observe interval without an "
        "observation), `store_unavailable` (observations dropped while the store was down) "
        "or `not_running` (no replica of tesoro was running)."
    )


class HistoryResponse(Meta):
    """Totals over time: one point per interval end."""

    points: list[HistoryPoint] = Field(
        description="One per interval end, oldest first; those before history starts are left out."
    )
    gaps: list[HistoryGap] = Field(description="Stretches without observations, oldest first.")
    interval: Literal["hour", "day", "week"] = Field(description="The points' spacing.")
    tz: str = Field(description="The IANA time zone in which intervals end.")
    starts_at: AwareDatetime = Field(description="`from`, as asked.")
    ends_at: AwareDatetime = Field(description="`to`, as asked (or now).")
