"""One count per bank account across Finqware consents.

A bank onboarded again before its old consent ended (the usual way a PSD2 consent is renewed)
reaches the same bank accounts through two consents, usually under new Finqware account
ids. Two accounts of different consents are the same bank account when they share a
Finqware account id or an IBAN, in the same currency. Such an account is counted once, from
the consent whose copy is the latest:

1. a copy with a position before one without;
2. the later `as_of` (the bank's own time of the balance used);
3. the later `fetched_at` (when tesoro received it);
4. the consent whose key sorts first.

Every other copy stays listed under its own consent with `position: null`, and one
`duplicate_account` warning about it names both connections and both account ids. Only
the connections an answer needs are compared: the rule is a function of their data alone,
so an answer built twice from one data state is the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from msgspec.structs import replace

from app.domain.interpret.common import DUPLICATE_ACCOUNT
from app.domain.models import ResponseWarning, Source
from app.domain.snapshot import Account, Counterparty

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _Copy:
    """One account of one consent's counterparty, where it sits in the parts."""

    part: int
    counterparty: int
    account: int
    connection: str
    held: Account


@dataclass(frozen=True)
class Counted:
    """The parts with each bank account counted once, and the warnings that say where."""

    parts: list[Sequence[Counterparty]]
    warnings: list[ResponseWarning]


def count_once(
    parts: Sequence[Sequence[Counterparty]], ibans: Mapping[tuple[str, str], str]
) -> Counted:
    """`parts` are each connection's counterparties (FinSync's pass through untouched);
    `ibans` gives the IBAN of the bank accounts that have one, by (connection, account id):
    each consent says for itself which IBAN its account has."""
    copies = [
        _Copy(part_index, cp_index, account_index, counterparty.id, account)
        for part_index, part in enumerate(parts)
        if part and part[0].source is Source.finqware
        for cp_index, counterparty in enumerate(part)
        for account_index, account in enumerate(counterparty.accounts)
    ]
    groups = _same_accounts(copies, ibans)
    if not groups:
        return Counted(list(parts), [])
    out = [list(part) for part in parts]
    warnings: list[ResponseWarning] = []
    for group in groups:
        kept = _kept(group)
        for copy in group:
            if copy.connection == kept.connection:
                continue  # one consent is never compared with itself
            counterparty = out[copy.part][copy.counterparty]
            accounts = list(counterparty.accounts)
            accounts[copy.account] = replace(copy.held, position=None)
            out[copy.part][copy.counterparty] = replace(counterparty, accounts=tuple(accounts))
            warnings.append(_warning(copy, kept, ibans.get((copy.connection, copy.held.id))))
    warnings.sort(key=lambda warning: (warning.source, warning.account_id or ""))
    return Counted(list(out), warnings)


def _same_accounts(
    copies: Sequence[_Copy], ibans: Mapping[tuple[str, str], str]
) -> list[list[_Copy]]:
    """The groups of copies that are one bank account and span two connections or more."""
    # Union-find over the copies: each identity (account id or IBAN, with the currency)
    # joins every copy that carries it.
    parent = list(range(len(copies)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_with: dict[tuple[str, str, str], int] = {}
    for index, copy in enumerate(copies):
        currency = copy.held.currency
        identities = [("id", copy.held.id, currency)]
        iban = ibans.get((copy.connection, copy.held.id))
        if iban is not None:
            identities.append(("iban", iban, currency))
        for identity in identities:
            other = first_with.setdefault(identity, index)
            parent[root(index)] = root(other)
    members: dict[int, list[_Copy]] = {}
    for index, copy in enumerate(copies):
        members.setdefault(root(index), []).append(copy)
    return [group for group in members.values() if len({copy.connection for copy in group}) > 1]


def _rank(copy: _Copy) -> tuple[bool, datetime, datetime]:
    position = copy.held.position
    if position is None:
        return (False, _EPOCH, _EPOCH)
    return (True, position.as_of or _EPOCH, position.fetched_at)


def _kept(group: Sequence[_Copy]) -> _Copy:
    best = max(_rank(copy) for copy in group)
    tied = [copy for copy in group if _rank(copy) == best]
    return min(tied, key=lambda copy: (copy.connection, copy.held.id))


def _warning(copy: _Copy, kept: _Copy, iban: str | None) -> ResponseWarning:
    what = f"IBAN {iban}, {copy.held.currency}" if iban else copy.held.currency
    return ResponseWarning(
        code=DUPLICATE_ACCOUNT,
        message=f"the same bank account ({what}) is reached through {copy.connection} "
        f"(account {copy.held.id}) and {kept.connection} (account {kept.held.id}); it is "
        f"counted once, from {kept.connection}, {_why(kept, copy)}, and listed under "
        f"{copy.connection} without a position",
        source=copy.connection,
        counterparty_id=copy.connection,
        account_id=copy.held.id,
    )


def _why(kept: _Copy, other: _Copy) -> str:
    mine, theirs = _rank(kept), _rank(other)
    if mine[0] != theirs[0]:
        return "the only one with a balance"
    if mine[1] != theirs[1]:
        return "whose balance is the latest"
    if mine[2] != theirs[2]:
        return "fetched last with a balance of the same moment"
    return "first by consent key, with a balance of the same moment"
