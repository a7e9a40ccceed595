"""What tesoro writes to its logs: never a credential sent in a query string."""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

# A query parameter whose name looks like a credential is logged with its value hidden.
CREDENTIAL_NAME = re.compile(
    r"(token|key|secret|password|passwd|pwd|auth|credential|signature|session|cookie)",
    re.IGNORECASE,
)
HIDDEN = "[hidden]"


def redact_query(path: str) -> str:
    """`/positions?api_key=abc&page=2` -> `/positions?api_key=[hidden]&page=2`."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(CREDENTIAL_NAME.search(name) for name, _ in pairs):
        return path
    safe = [(name, HIDDEN if CREDENTIAL_NAME.search(name) else value) for name, value in pairs]
    return f"{base}?{urlencode(safe, safe='[]')}"


class CredentialQueryFilter(logging.Filter):
    """For uvicorn's access log, whose arguments are (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging configuration, with the access log's queries redacted."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["credentials"] = {"()": CredentialQueryFilter}
    config["handlers"]["access"].setdefault("filters", []).append("credentials")
    return config
