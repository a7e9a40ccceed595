"""Balances that move while the sandbox runs: each step changes a few FinSync accounts and one
bank account's balances by small, deterministic amounts, so changes and events happen while
you watch (tesoro sees them when its cache next loads: on a refresh, or on the observe
schedule).

`BalanceMoves.step` is one move (what a test calls); `run` steps every few seconds until
cancelled. The simulators never move on their own: only `tesoro serve --sandbox` runs it.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from app.sandbox.data import FINSYNC_COMPANY_ID, SANDBOX_CONSENTS
from app.sandbox.finqware import FinqwareStore
from app.sandbox.finsync import FinsyncStore

SEED = 19
# The FinSync accounts moved at each step.
_FINSYNC_PER_STEP = 2
# The largest move, in thousandths of the balance (a balance never crosses zero).
_MAX_PER_MILLE = 20


def _moved(literal: str, rng: random.Random) -> str:
    """The balance (a decimal literal) moved by a small fraction of itself, at its own
    precision; at least one unit, so every move is a change."""
    balance = Decimal(literal)
    unit = Decimal(1).scaleb(balance.as_tuple().exponent)  # type: ignore[arg-type]
    per_mille = rng.choice([n for n in range(-_MAX_PER_MILLE, _MAX_PER_MILLE + 1) if n])
    delta = (abs(balance) * per_mille / 1000).quantize(unit)
    if delta == 0:
        delta = unit if per_mille > 0 else -unit
    moved = balance + delta
    if balance and (moved == 0 or (moved > 0) != (balance > 0)):
        moved = balance - delta  # never across zero: the account keeps its side
    return str(moved)


class BalanceMoves:
    """Deterministic moves of the simulators' balances: step `n` is the same on every run."""

    def __init__(self, finsync: FinsyncStore, finqware: FinqwareStore) -> None:
        self.finsync = finsync
        self.finqware = finqware
        self.steps = 0

    def step(self) -> None:
        """One move: a few FinSync accounts and one bank account change."""
        self.steps += 1
        rng = random.Random(f"{SEED}:{self.steps}")
        accounts = sorted(
            (account.id, account.balance)
            for client in self.finsync.clients(FINSYNC_COMPANY_ID)
            for account in client.accounts
            if Decimal(account.balance) != 0
        )
        for account_id, balance in rng.sample(accounts, k=min(_FINSYNC_PER_STEP, len(accounts))):
            self.finsync.set_balance(account_id, _moved(balance, rng))
        banks = sorted(
            (account.id, account)
            for consent in sorted(c.key for c in SANDBOX_CONSENTS)
            if consent not in self.finqware.expired
            for account in self.finqware.accounts(consent)
            if account.balances and all(Decimal(b.amount) > 0 for b in account.balances)
        )
        if banks:
            bank_account_id, account = rng.choice(banks)
            # Every balance type of the account moves alike: they stay consistent.
            delta = Decimal(_moved(account.balances[0].amount, rng)) - Decimal(
                account.balances[0].amount
            )
            floor = Decimal("0.01")
            self.finqware.set_amounts(
                bank_account_id,
                {b.id: str(max(Decimal(b.amount) + delta, floor)) for b in account.balances},
            )

    async def run(self, every_seconds: float) -> None:
        """Step every `every_seconds` until cancelled."""
        while True:
            await asyncio.sleep(every_seconds)
            self.step()
