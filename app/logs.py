"""What tesoro writes to its logs, and how: structlog lines (JSON by default), every line of a
request carrying its request id, and never a credential.

tesoro's modules log through the standard `logging` module (`extra={...}` adds fields);
`configure_logging` routes every record, tesoro's, uvicorn's and the libraries', through one
structlog `ProcessorFormatter`, so they all come out in the same format. Nothing is
configured at import: `tesoro serve` calls `configure_logging` once.

Redaction, last before rendering, covers every field of every line (exception text
included): the configured secret values (FinSync key, Finqware client secret, each consent's
credentials id and access token, added by `create_app` with `add_secrets`), any
`Bearer <token>` or `Authorization` value, any field whose name says it is a credential,
and query parameters whose names look like credentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import sys
import time
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import structlog

from app.upstreams.http import CURRENT_REQUEST_ID

LogFormat = Literal["json", "console"]

# A query parameter whose name looks like a credential is logged with its value hidden.
CREDENTIAL_NAME = re.compile(
    r"(token|key|secret|password|passwd|pwd|auth|credential|signature|session|cookie)",
    re.IGNORECASE,
)
HIDDEN = "[hidden]"

# `Bearer abc…`, `authorization: abc` and `x-api-key: abc`, wherever they appear.
_SCHEMES = re.compile(
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{6,}"
    r"|(\b(?:authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?)"
    r"[^\s\"',;}\]]+"
)
_QUERY_CREDENTIAL = re.compile(
    r"(?i)([?&][^=&\s\"']*(?:token|key|secret|password|passwd|pwd|auth|credential|signature"
    r"|session|cookie)[^=&\s\"']*=)[^&\s\"'#]+"
)
# Fields whose value is hidden whatever it is (an `extra` someone named after its content).
_SECRET_FIELDS = frozenset(
    {"authorization", "api_key", "x-api-key", "client_secret", "access_token", "password"}
)
# Fields tesoro writes itself and that never carry a credential: not scanned (the access
# line is on every request's path).
_PLAIN_FIELDS = frozenset(
    {
        "timestamp",
        "level",
        "logger",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "connection",
        "upstream",
        "code",
        "outcome",
    }
)

# Secret values the running apps were configured with (masked wherever they appear). Shared
# by every app of the process: a secret of one is never worth writing in another's log.
_secrets: set[str] = set()
_secrets_longest_first: tuple[str, ...] = ()
# Values this short would mask ordinary words; a real credential is longer.
_MIN_SECRET_LENGTH = 6


def add_secrets(values: Iterable[str]) -> None:
    """Mask these values in every line from now on."""
    global _secrets_longest_first
    _secrets.update(value for value in values if len(value) >= _MIN_SECRET_LENGTH)
    _secrets_longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact_query(path: str) -> str:
    """`/positions?api_key=abc&page=2` -> `/positions?api_key=[hidden]&page=2`."""
    if "?" not in path:
        return path
    return _QUERY_CREDENTIAL.sub(lambda found: found.group(1) + HIDDEN, path)


def redact_text(text: str) -> str:
    """The text with every known secret, bearer token and credential-like query value hidden."""
    for secret in _secrets_longest_first:
        if secret in text:
            text = text.replace(secret, HIDDEN)
    text = _SCHEMES.sub(lambda found: (found.group(1) or found.group(2)) + HIDDEN, text)
    return redact_query(text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: HIDDEN if str(key).lower() in _SECRET_FIELDS else _redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(str(value))


def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: hide credentials in every field but tesoro's own plain ones."""
    # uvicorn's copy of its message with terminal colours: noise in a log line.
    event.pop("color_message", None)
    for key, value in event.items():
        if key in _PLAIN_FIELDS:
            continue
        if key.lower() in _SECRET_FIELDS:
            event[key] = HIDDEN
        else:
            event[key] = _redact_value(value)
    return event


def add_request_id(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the id of the request being served, on every line it causes."""
    request_id = CURRENT_REQUEST_ID.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


_HANDLER_NAME = "tesoro"
# The root logger's handler list, read (not copied) to see whether ours is still attached.
_root_handlers = logging.getLogger().handlers


def configure_logging(
    log_format: LogFormat = "json", level: str = "info", stream: TextIO | None = None
) -> None:
    """Every log record of the process written to `stream` (stderr) as one structlog line:
    JSON (`log_format="json"`) or human-readable (`"console"`), from `level` up."""
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_id,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    global _access_handler
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    _access_handler = handler if log_format == "json" else None
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx2 logs every request it sends at INFO, query string and all: tesoro's own line
    # for each upstream call (app.upstreams.http, at DEBUG) replaces it.
    logging.getLogger("httpx2").setLevel(max(root.level, logging.WARNING))
    # uvicorn's loggers write through the root handler, not their own, from the level set
    # here (a uvicorn.Config made earlier in the process may have set one of its own).
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            *shared[:2],
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_request_id,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


# The access line: one per request, written by the RequestMetrics middleware.
access_logger = logging.getLogger("app.access")
# With JSON lines, the access line is written straight to the handler's stream: the same
# line the formatter would make, at about a fifth of the cost (no LogRecord, no processor
# chain; its fields are tesoro's own, nothing to redact). None: through `logging`.
_access_handler: logging.StreamHandler[TextIO] | None = None


# The access line's head for each (method, route, status), as JSON, written once: the
# labels are bounded (route templates, known methods), so this stays small.
_ACCESS_HEADS: dict[tuple[str, str, int], str] = {}
_ACCESS_HEADS_MAX = 4096


def access_line(
    method: str,
    route: str,
    status: int,
    duration_ms: float,
    timestamp: str,
    request_id: str | None,
) -> str:
    """The access line as JSON, byte for byte what `json.dumps` writes of `{"event":
    "request", "level": "info", "logger": "app.access", "method", "route", "status",
    "duration_ms", "timestamp", "request_id" (when there is one)}`, with a newline."""
    head = _ACCESS_HEADS.get((method, route, status))
    if head is None:
        fixed = {
            "event": "request",
            "level": "info",
            "logger": "app.access",
            "method": method,
            "route": route,
            "status": status,
        }
        head = json.dumps(fixed)[:-1] + ', "duration_ms": '
        if len(_ACCESS_HEADS) < _ACCESS_HEADS_MAX:
            _ACCESS_HEADS[method, route, status] = head
    # `json.dumps` writes a finite float as `float.__repr__` does.
    number = repr(duration_ms) if math.isfinite(duration_ms) else json.dumps(duration_ms)
    line = f'{head}{number}, "timestamp": {_json_string(timestamp)}'
    if request_id is not None:
        line = f'{line}, "request_id": {_json_string(request_id)}'
    return line + "}\n"


def _json_string(value: str) -> str:
    """`json.dumps(value)`, without its encoder for the usual case: printable ASCII with
    nothing to escape is written as it is, between quotes."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return f'"{value}"'
    return json.dumps(value)


# The access line's time to the second, written once a second: (whole seconds, its text).
_SECOND: tuple[int, str] = (-1, "")


def utc_now_text(now_ns: int | None = None) -> str:
    """`datetime.now(UTC).isoformat()` with `Z` for `+00:00`, as the log lines write it
    (microseconds, left out when they are 0), from `time.time_ns()` or `now_ns`; the date and
    time to the second are formatted once a second, not for every access line."""
    global _SECOND
    seconds, nanoseconds = divmod(time.time_ns() if now_ns is None else now_ns, 1_000_000_000)
    whole, text = _SECOND
    if whole != seconds:
        text = datetime.fromtimestamp(seconds, UTC).isoformat().removesuffix("+00:00")
        _SECOND = (seconds, text)
    micro = nanoseconds // 1000
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


def log_access(method: str, route: str, status: int, seconds: float) -> None:
    """`{"event": "request", "method", "route", "status", "duration_ms", "request_id"}`."""
    if not access_logger.isEnabledFor(logging.INFO):
        return
    handler = _access_handler
    if handler is None or handler not in _root_handlers:
        access_logger.info(
            "request",
            extra={
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )
        return
    text = access_line(
        method,
        route,
        status,
        round(seconds * 1000, 3),
        utc_now_text(),
        CURRENT_REQUEST_ID.get(),
    )
    with handler.lock or contextlib.nullcontext():
        handler.stream.write(text)
        handler.stream.flush()
