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

One count per account: a client listed twice with the same content is one client; with
different content it is warned about (`conflicting_record`) and the copy updated last is
used. An account id listed under two clients is counted under one of them
(`duplicate_account`); under the other it is listed without a position.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
from msgspec.structs import replace

from app.domain.ids import FINSYNC, finsync_id
from app.domain.interpret.common import (
    CONFLICTING_RECORD,
    DUPLICATE_ACCOUNT,
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
from app.domain.models import Kind, Meaning, ResponseWarning, Source
from app.domain.money import negate, round_upstream_number, zero_for
from app.domain.snapshot import Account, Counterparty, Position, ReportedFigure, encode_json
from app.upstreams.finsync import FinsyncAccount, FinsyncClientRecord
from app.upstreams.reading import Parsed, Rejected

_KINDS: dict[int, Kind] = {0: Kind.internal, 1: Kind.external}

# FinSync fields tesoro shows or uses, besides the ones interpretation needs (which have
# warnings of their own): one that cannot be read is named in an `unreadable_field` warning.
# Fields tesoro does not use (company_id, created_at, client_id) are ignored when unreadable.
_CLIENT_FIELDS_SHOWN = frozenset({"name", "description", "accounts"})
_ACCOUNT_FIELDS_SHOWN = frozenset({"name", "updated_at"})


_EPOCH = datetime.min.replace(tzinfo=UTC)


class _Copy(msgspec.Struct, frozen=True, gc=False):
    """One copy of a client as a page listed it, interpreted, with its own warnings.

    Untracked by the garbage collector, as the counterparty it holds is: one per client
    (50,000) is held from its page to the end of the read, and tracked they made each full
    collection of a reload scan them all (its warnings are tracked on their own, and hold
    nothing that could lead back to it)."""

    client_id: int
    counterparty: Counterparty | None
    warnings: tuple[ResponseWarning, ...]
    updated_at: datetime  # the latest `updated_at` of the client and its accounts, as sent

    def same_as(self, other: _Copy) -> bool:
        # The stamp too: two copies of a client left out read alike, yet may differ.
        return (
            self.updated_at == other.updated_at
            and self.counterparty == other.counterparty
            and self.warnings == other.warnings
        )

    def rank(self) -> tuple[datetime, bool, bytes, tuple[str, ...]]:
        # Updated last wins; then a copy that could be interpreted; then its content, so the
        # choice never depends on the order or the pages the copies came in.
        content = b"" if self.counterparty is None else encode_json(self.counterparty)
        said = tuple(warning.model_dump_json() for warning in self.warnings)
        return (self.updated_at, self.counterparty is not None, content, said)


class FinsyncPages:
    """FinSync's client list interpreted a page at a time, as the pages arrive (so the
    interpretation overlaps the wait for the next pages, and no page's wire records outlive
    it), then put together in page order, whatever order the pages landed in.

    A client listed more than once (pages shifting under a concurrent write, or a repeat on
    one page) is kept where it first appears: identical copies are one client; copies that
    differ are warned about (`conflicting_record`) and the one updated last is used, with
    its warnings only. Then an account id listed under two clients counts under one of them
    (`duplicate_account`, see `count_each_account_once`)."""

    def __init__(self, *, fetched_at: datetime) -> None:
        self._fetched_at = as_utc(fetched_at)
        self._pages: dict[int, tuple[list[_Copy], tuple[ResponseWarning, ...]]] = {}

    def add(self, number: int, clients: Parsed[FinsyncClientRecord]) -> None:
        """Interpret one page now; `number` orders it among the others."""
        warnings = Warnings(FINSYNC)
        for record in clients.rejected:
            warnings.add(
                UNREADABLE_RECORD,
                f"a FinSync client could not be read ({cut(record.reason)}); it is left out",
            )
        on_page = tuple(warnings.items)
        copies: list[_Copy] = []
        for client in clients.records:
            first = len(warnings.items)
            counterparty = _client(client, self._fetched_at, warnings)
            own = tuple(warnings.items[first:]) if len(warnings.items) > first else ()
            copies.append(_Copy(client.id, counterparty, own, _updated_at(client)))
        self._pages[number] = (copies, on_page)

    def done(self) -> Interpreted:
        # Each client's first copy, and a list of its distinct copies only when it has more
        # (a list per client would wake the garbage collector over the whole snapshot).
        first: dict[int, _Copy] = {}
        distinct: dict[int, list[_Copy]] = {}
        first_on: dict[int, list[int]] = {}
        for number in sorted(self._pages):
            for copy in self._pages[number][0]:
                held = first.setdefault(copy.client_id, copy)
                if held is copy:
                    first_on.setdefault(number, []).append(copy.client_id)
                elif not copy.same_as(held):
                    others = distinct.setdefault(copy.client_id, [held])
                    if not any(copy.same_as(other) for other in others):
                        others.append(copy)
        chosen: list[Counterparty] = []
        items: list[ResponseWarning] = []
        for number in sorted(self._pages):
            items.extend(self._pages[number][1])
            for client_id in first_on.get(number, ()):
                copies = distinct.get(client_id)
                kept = first[client_id] if copies is None else max(copies, key=_Copy.rank)
                items.extend(kept.warnings)
                if copies is not None and len(copies) > 1:
                    items.append(_conflict(client_id, len(copies), kept))
                if kept.counterparty is not None:
                    chosen.append(kept.counterparty)
        counted, duplicates = count_each_account_once(chosen)
        return Interpreted(tuple(counted), (*items, *duplicates))


def _updated_at(client: FinsyncClientRecord) -> datetime:
    stamps = [client.updated_at, *(account.updated_at for account in client.accounts)]
    return max((as_utc(stamp) for stamp in stamps if stamp is not None), default=_EPOCH)


def _conflict(client_id: int, copies: int, kept: _Copy) -> ResponseWarning:
    when = "" if kept.updated_at == _EPOCH else f", updated at {_iso(kept.updated_at)}"
    return ResponseWarning(
        code=CONFLICTING_RECORD,
        message=f"FinSync listed client {client_id} {copies} times with different content "
        f"in one read; the copy updated last is used{when}",
        source=FINSYNC,
        counterparty_id=finsync_id(client_id),
    )


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def count_each_account_once(
    counterparties: Sequence[Counterparty],
) -> tuple[list[Counterparty], list[ResponseWarning]]:
    """The clients with each FinSync account id counted under one client only: the one
    whose copy of the account was updated last (one with a position before one without,
    then the lowest client id). Under every other client the account is listed without a
    position, with a `duplicate_account` warning naming both clients."""
    # The first owner of each id as a plain int: a container per account would wake the
    # garbage collector over the whole snapshot, many times over at 50,000 clients.
    first_owner: dict[str, int] = {}
    owners: dict[str, list[int]] = {}
    for index, counterparty in enumerate(counterparties):
        for account in counterparty.accounts:
            first = first_owner.setdefault(account.id, index)
            if first != index:
                held = owners.setdefault(account.id, [first])
                if index not in held:
                    held.append(index)
    if not owners:
        return list(counterparties), []
    out = list(counterparties)
    warnings: list[ResponseWarning] = []
    for account_id, indexes in owners.items():
        holders = [(index, _account_in(out[index], account_id)) for index in indexes]
        kept_index, kept = max(holders, key=lambda held: _holder_rank(out[held[0]], held[1]))
        keeper = out[kept_index]
        for index, account in holders:
            if index == kept_index:
                continue
            loser = out[index]
            out[index] = _without_position(loser, account_id)
            warnings.append(
                ResponseWarning(
                    code=DUPLICATE_ACCOUNT,
                    message=f"FinSync lists account {account_id} under {loser.id} and "
                    f"{keeper.id}; it is counted once, under {keeper.id} (its copy "
                    f"{_why(kept, account)}), and listed here without a position",
                    source=FINSYNC,
                    counterparty_id=loser.id,
                    account_id=account_id,
                )
            )
    return out, warnings


def _account_in(counterparty: Counterparty, account_id: str) -> Account:
    return next(account for account in counterparty.accounts if account.id == account_id)


def _holder_rank(counterparty: Counterparty, account: Account) -> tuple[bool, datetime, int]:
    position = account.position
    as_of = _EPOCH if position is None or position.as_of is None else as_utc(position.as_of)
    # The lowest client id wins a tie: its negation is the greatest.
    return (position is not None, as_of, -_client_number(counterparty.id))


def _client_number(counterparty_id: str) -> int:
    return int(counterparty_id.removeprefix(f"{FINSYNC}:"))


def _why(kept: Account, other: Account) -> str:
    if kept.position is not None and other.position is None:
        return "has a position"
    mine, theirs = (a.position.as_of if a.position else None for a in (kept, other))
    if mine is not None and (theirs is None or mine > theirs):
        return f"was updated last, at {_iso(mine)}"
    return "was updated at the same moment; the lowest client id decides"


def _without_position(counterparty: Counterparty, account_id: str) -> Counterparty:
    accounts = tuple(
        replace(account, position=None) if account.id == account_id else account
        for account in counterparty.accounts
    )
    return replace(counterparty, accounts=accounts)


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
    accounts = _each_once(
        (
            account
            for record in client.accounts
            if (
                account := _account(
                    client, counterparty_id, name, kind, record, fetched_at, warnings
                )
            )
            is not None
        ),
        warnings,
    )
    return Counterparty(
        id=counterparty_id,
        source=Source.finsync,
        kind=kind,
        name=name,
        description=first_text(client.description),
        accounts=tuple(sorted(accounts, key=account_order)),
    )


def _each_once(accounts: Iterable[Account], warnings: Warnings) -> list[Account]:
    """A client's accounts, each id once: identical repeats merge; copies that differ are
    warned about and the one updated last (then the greater content) is used."""
    listed = list(accounts)
    if len(listed) < 2 or len({account.id for account in listed}) == len(listed):
        return listed  # the common case, without a container per account
    by_id: dict[str, list[Account]] = {}
    for account in listed:
        held = by_id.setdefault(account.id, [])
        if account not in held:
            held.append(account)
    kept: list[Account] = []
    for account_id, copies in by_id.items():
        if len(copies) == 1:
            kept.append(copies[0])
            continue
        kept.append(max(copies, key=_account_rank))
        warnings.add(
            CONFLICTING_RECORD,
            f"FinSync lists this account {len(copies)} times in one client with different "
            "content; the copy updated last is used",
            account_id=account_id,
        )
    return kept


def _account_rank(account: Account) -> tuple[datetime, bytes]:
    position = account.position
    as_of = _EPOCH if position is None or position.as_of is None else as_utc(position.as_of)
    return (as_of, encode_json(account))


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
