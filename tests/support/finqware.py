"""Finqware balance entries as ``POST /v1/balances/get`` sends them (openapi/finqware.yaml),
for tests that build answers or check the simulator's."""

from __future__ import annotations

from typing import Any

BALANCE_KEYS = frozenset({"account_id", "id", "timestamp", "data"})
"""The members of a balance entry."""

BALANCE_DATA_KEYS = frozenset(
    {
        "amount",
        "credit_debit_indicator",
        "credit_limit_included",
        "credit_line",
        "currency",
        "native_date",
        "native_timestamp",
        "type",
    }
)
"""The members of an entry's ``data``."""


def balance_entry(
    *,
    account_id: str = "acc-1",
    entry_id: str = "bal-1",
    timestamp: str = "2026-05-04T07:31:51.689168",
    **data: object,
) -> dict[str, Any]:
    """One InterimBooked credit entry of 210.23001 RON without a credit line, with the given
    `data` members set."""
    return {
        "account_id": account_id,
        "id": entry_id,
        "timestamp": timestamp,
        "data": {
            "amount": "210.23001",
            "credit_debit_indicator": "credit",
            "credit_limit_included": False,
            "credit_line": None,
            "currency": "RON",
            "native_date": "2026-05-04",
            "native_timestamp": None,
            "type": "InterimBooked",
            **data,
        },
    }
