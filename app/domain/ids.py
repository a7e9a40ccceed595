"""The id scheme of tesoro: `finsync:<id>` and `finqware:<key>`, built and read in one place.

| thing | form |
|---|---|
| FinSync client or account | `finsync:<FinSync id>` (1 to 18 digits) |
| Finqware bank connection (one per configured consent) | `finqware:<consent key>` |
| Finqware account | `finqware:<Finqware account id>` |

An id is matched whole: `finsync:11` followed by a newline is malformed, not client 11.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FINSYNC: Literal["finsync"] = "finsync"
FINQWARE: Literal["finqware"] = "finqware"

CONSENT_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

_FINSYNC_ID = re.compile(r"finsync:([1-9][0-9]{0,17})")
_FINQWARE_ID = re.compile(r"finqware:([A-Za-z0-9][A-Za-z0-9._-]{0,63})")
# A counterparty id of either form, whole: what the API publishes for clients to check.
COUNTERPARTY_ID_PATTERN = rf"^(?:{_FINSYNC_ID.pattern}|{_FINQWARE_ID.pattern})$"


def finsync_id(upstream_id: int) -> str:
    """A FinSync client's or account's id: `finsync:42`."""
    return f"{FINSYNC}:{upstream_id}"


def finqware_id(key_or_account: str) -> str:
    """A bank connection's id (`finqware:bt-main`), or a Finqware account's."""
    return f"{FINQWARE}:{key_or_account}"


@dataclass(frozen=True)
class CounterpartyRef:
    """A well-formed counterparty id, read: which upstream and which of its records."""

    source: Literal["finsync", "finqware"]
    local: str

    @property
    def id(self) -> str:
        return f"{self.source}:{self.local}"

    @property
    def finsync_client(self) -> int | None:
        return int(self.local) if self.source == FINSYNC else None

    @property
    def connection(self) -> str:
        """The key of the connection that holds it: `finsync` or `finqware:<key>`."""
        return FINSYNC if self.source == FINSYNC else self.id


def parse_counterparty_id(value: str) -> CounterpartyRef | None:
    """The counterparty an id names, or None when it is malformed (matched whole)."""
    found = _FINSYNC_ID.fullmatch(value)
    if found:
        return CounterpartyRef(FINSYNC, found.group(1))
    found = _FINQWARE_ID.fullmatch(value)
    if found:
        return CounterpartyRef(FINQWARE, found.group(1))
    return None
