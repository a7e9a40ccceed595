"""FinSync clients to counterparties with signed positions: the FinSync rows of the table.

| client type | balance b | `amount` | `meaning` |
|---|---|---|---|
| 0 internal | b > 0 | +b | cash |
| 0 internal | b < 0 | b | overdraft |
| 1 external | b > 0 | -b | payable (the company owes the client) |
| 1 external | b < 0 | +abs(b) | receivable (the client owes the company) |
| any | 0 | 0 scaled to the currency | zero |

Balances are rounded half-even to the currency's minor units; anything the table does not
cover is left out with a warning, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from app.domain.ids import FINSYNC, finsync_id
from app.domain.interpret.common import (
    INVALID_AMOUNT,
    INVALID_CURRENCY,
    UNKNOWN_CLIENT_TYPE,
    UNREADABLE_FIELD,
    UNREADABLE_RECORD,
    Interpreted,
    Warnings,
    account_order,
    as_utc,
    cut,
    first_text,
    normalize_currency,
    quote,
    reported,
    sent,
    side_of,
    unreadable_named,
)
from app.domain.models import (
    Account,
    Counterparty,
    Kind,
    Meaning,
    Position,
    ReportedFigure,
    ResponseWarning,
    Source,
    compact,
)
from app.domain.money import negate, round_upstream_number, zero_for
from app.upstreams.finsync import FinsyncAccount, FinsyncClientRecord
from app.upstreams.reading import Parsed, Rejected

_KINDS: dict[int, Kind] = {0: Kind.internal, 1: Kind.external}

# FinSync fields tesoro shows or uses, besides the ones interpretation needs (which have
# warnings of their own): one that cannot be read is named in an `unreadable_field` warning.
# Fields tesoro does not use (company_id, created_at, client_id) are ignored when unreadable.
_CLIENT_FIELDS_SHOWN = frozenset({"name", "description", "accounts"})
_ACCOUNT_FIELDS_SHOWN = frozenset({"name", "updated_at"})


class FinsyncPages:
    """FinSync's client list interpreted a page at a time, as the pages arrive (so the
    interpretation overlaps the wait for the next pages, and no page's wire records outlive
    it), then put together in page order: a client that pages shifting under a concurrent
    write shows twice is kept where it first appears, with that copy's warnings only."""

    def __init__(self, *, fetched_at: datetime) -> None:
        self._fetched_at = as_utc(fetched_at)
        self._pages: dict[int, tuple[list[tuple[int, Counterparty | None]], Warnings]] = {}

    def add(self, number: int, clients: Parsed[FinsyncClientRecord]) -> None:
        """Interpret one page now; `number` orders it among the others."""
        warnings = Warnings(FINSYNC)
        for record in clients.rejected:
            warnings.add(
                UNREADABLE_RECORD,
                f"a FinSync client could not be read ({cut(record.reason)}); it is left out",
            )
        read: list[tuple[int, Counterparty | None]] = []
        on_page: set[int] = set()
        for client in clients.records:
            if client.id not in on_page:
                on_page.add(client.id)
                read.append((client.id, _client(client, self._fetched_at, warnings)))
        compact(counterparty for _, counterparty in read if counterparty is not None)
        self._pages[number] = (read, warnings)

    def done(self) -> Interpreted:
        seen: set[int] = set()
        counterparties: list[Counterparty] = []
        items: list[ResponseWarning] = []
        for number in sorted(self._pages):
            read, warnings = self._pages[number]
            repeated: set[str] = set()
            for client_id, counterparty in read:
                if client_id in seen:
                    repeated.add(finsync_id(client_id))
                    continue
                seen.add(client_id)
                if counterparty is not None:
                    counterparties.append(counterparty)
            items.extend(w for w in warnings.items if w.counterparty_id not in repeated)
        return Interpreted(tuple(counterparties), tuple(items))


def interpret_finsync(
    clients: Sequence[FinsyncClientRecord],
    *,
    fetched_at: datetime,
    rejected: Sequence[Rejected] = (),
) -> Interpreted:
    """Every FinSync client as a counterparty, in the order given; each client FinSync sent
    without a readable id (`rejected`) is named in an `unreadable_record` warning."""
    pages = FinsyncPages(fetched_at=fetched_at)
    pages.add(1, Parsed(list(clients), list(rejected)))
    return pages.done()


def interpret_finsync_client(client: FinsyncClientRecord, *, fetched_at: datetime) -> Interpreted:
    """One FinSync client: no counterparty, and a warning, when its type is not 0 or 1."""
    warnings = Warnings(FINSYNC)
    counterparty = _client(client, as_utc(fetched_at), warnings)
    return warnings.done([] if counterparty is None else [counterparty])


def finsync_signed(kind: Kind, rounded: Decimal, currency: str) -> tuple[Decimal, Meaning]:
    """The FinSync rows: the company's view of a client balance already rounded."""
    if rounded.is_zero():
        return zero_for(currency), Meaning.zero
    if kind is Kind.internal:
        return rounded, Meaning.cash if rounded > 0 else Meaning.overdraft
    # External: a positive balance is what the company owes the client.
    return negate(rounded, currency), Meaning.payable if rounded > 0 else Meaning.receivable


def _client(
    client: FinsyncClientRecord, fetched_at: datetime, all_warnings: Warnings
) -> Counterparty | None:
    counterparty_id = finsync_id(client.id)
    warnings = all_warnings.about(counterparty_id)
    kind = _KINDS.get(client.type) if isinstance(client.type, int) else None
    if kind is None:
        shown = client.type if isinstance(client.type, int) else quote(client.type)
        warnings.add(
            UNKNOWN_CLIENT_TYPE,
            f"FinSync client type {shown} is neither 0 (internal) nor 1 (external); "
            "the client is left out",
        )
        return None
    name = first_text(client.name)
    if name is None:
        name = f"FinSync client {client.id}"
        if not unreadable_named(client.unreadable, "name"):
            warnings.add(
                UNREADABLE_FIELD, f"FinSync sent no name for this client; it is shown as {name!r}"
            )
    warnings.unreadable_fields("FinSync client", client.unreadable, _CLIENT_FIELDS_SHOWN)
    for rejected in client.accounts.rejected:
        warnings.add(
            UNREADABLE_RECORD,
            f"an account of this FinSync client could not be read ({cut(rejected.reason)}); "
            "it is left out",
        )
    accounts = [
        account
        for record in client.accounts
        if (account := _account(client, counterparty_id, name, kind, record, fetched_at, warnings))
        is not None
    ]
    return Counterparty(
        id=counterparty_id,
        source=Source.finsync,
        kind=kind,
        name=name,
        description=first_text(client.description),
        accounts=sorted(accounts, key=account_order),
    )


def _account(
    client: FinsyncClientRecord,
    counterparty_id: str,
    counterparty_name: str,
    kind: Kind,
    record: FinsyncAccount,
    fetched_at: datetime,
    warnings: Warnings,
) -> Account | None:
    account_id = finsync_id(record.id)
    warnings.unreadable_fields(
        "FinSync account", record.unreadable, _ACCOUNT_FIELDS_SHOWN, account_id=account_id
    )
    currency = normalize_currency(record.currency_name)
    if currency is None:
        # Account.currency must be a code, so an account without one cannot be listed.
        shown = sent(record.unreadable, "currency_name") or quote(record.currency_name)
        warnings.add(
            INVALID_CURRENCY,
            f"FinSync currency {shown} is not a currency code; the account is left out",
            account_id=account_id,
        )
        return None
    name = first_text(record.name) or currency
    balance = record.balance
    try:
        rounded = round_upstream_number(balance, currency) if balance is not None else None
    except ValueError:
        rounded = None
    if balance is None or rounded is None:
        shown = sent(record.unreadable, "balance") or quote(balance)
        warnings.add(
            INVALID_AMOUNT,
            f"FinSync balance {shown} is not a usable amount",
            account_id=account_id,
        )
        return Account(id=account_id, name=name, currency=currency, position=None)
    amount, meaning = finsync_signed(kind, rounded, currency)
    assert isinstance(client.type, int)  # a known kind is 0 or 1
    position = Position(
        counterparty_id=counterparty_id,
        counterparty_name=counterparty_name,
        kind=kind,
        source=Source.finsync,
        account_id=account_id,
        account_name=name,
        currency=currency,
        amount=amount,
        side=side_of(amount),
        meaning=meaning,
        reported=ReportedFigure(amount=reported(balance), client_type=client.type),
        as_of=record.updated_at,
        fetched_at=fetched_at,
    )
    return Account(id=account_id, name=name, currency=currency, position=position)
