"""Interpretation: upstream wire records to counterparties with signed positions, one module
per upstream (`finsync`, `finqware`) over what they share (`common`)."""

from app.domain.interpret.common import (
    ACCOUNT_DETAILS_UNAVAILABLE,
    CONFLICTING_RECORD,
    CONSENT_EXPIRING,
    CREDIT_LINE_OTHER_CURRENCY,
    DUPLICATE_ACCOUNT,
    INVALID_AMOUNT,
    INVALID_BALANCE_TYPE,
    INVALID_CURRENCY,
    NO_USABLE_BALANCE,
    UNKNOWN_CLIENT_TYPE,
    UNKNOWN_CREDIT_DEBIT_INDICATOR,
    UNREADABLE_FIELD,
    UNREADABLE_RECORD,
    Interpreted,
    Warnings,
)
from app.domain.interpret.finqware import (
    DEFAULT_AVAILABLE_ORDER,
    DEFAULT_CURRENT_FALLBACK_ORDER,
    DEFAULT_CURRENT_ORDER,
    BalanceOrders,
    finqware_placeholder,
    interpret_finqware,
)
from app.domain.interpret.finsync import (
    FinsyncPages,
    interpret_finsync,
    interpret_finsync_client,
)

__all__ = [
    "ACCOUNT_DETAILS_UNAVAILABLE",
    "CONFLICTING_RECORD",
    "CONSENT_EXPIRING",
    "CREDIT_LINE_OTHER_CURRENCY",
    "DEFAULT_AVAILABLE_ORDER",
    "DEFAULT_CURRENT_FALLBACK_ORDER",
    "DEFAULT_CURRENT_ORDER",
    "DUPLICATE_ACCOUNT",
    "INVALID_AMOUNT",
    "INVALID_BALANCE_TYPE",
    "INVALID_CURRENCY",
    "NO_USABLE_BALANCE",
    "UNKNOWN_CLIENT_TYPE",
    "UNKNOWN_CREDIT_DEBIT_INDICATOR",
    "UNREADABLE_FIELD",
    "UNREADABLE_RECORD",
    "BalanceOrders",
    "FinsyncPages",
    "Interpreted",
    "Warnings",
    "finqware_placeholder",
    "interpret_finqware",
    "interpret_finsync",
    "interpret_finsync_client",
]
