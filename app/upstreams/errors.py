"""The one error hierarchy every upstream adapter raises, with stable reason codes.

Lower-level failures (httpx2 transport errors, HTTP status codes, vendor error
bodies, malformed JSON) are translated into these at the adapter boundary, in
`app.upstreams.http`, so nothing above the adapters ever sees httpx2 or a vendor
body::

    UpstreamError                   every failure of an upstream call; .code, .upstream
    ├── TransientUpstreamError      worth retrying later; stale data may cover it
    │   ├── UpstreamTimeoutError        code "timeout"
    │   ├── UpstreamUnavailableError    code "upstream_error"  (network, 5xx, HTML proxy page)
    │   ├── UpstreamRateLimitedError    code "rate_limited"    (429, Finqware's bank 400)
    │   └── UpstreamInconsistentReadError code "inconsistent_read" (pages moved while read)
    ├── PermanentUpstreamError      retrying will not help until someone acts
    │   ├── UpstreamUnauthorizedError   code "unauthorized"    (bad key, bad tenant secret)
    │   ├── ConsentExpiredError         code "consent_expired" (Finqware consent expired/revoked)
    │   ├── UpstreamBadResponseError    code "bad_response"    (non-JSON, missing field)
    │   └── UpstreamRejectedError       code "rejected"        (a 4xx about our request)
    │       └── UpstreamNotFoundError   code "not_found"
    └── UpstreamOutcomeUnknownError code "outcome_unknown"  a write whose result is unknown

Messages are short, human and never contain a secret: adapters build them from
status codes and vendor error codes, never from request bodies or headers.
"""

from __future__ import annotations

from typing import ClassVar, Literal

ErrorCode = Literal[
    "timeout",
    "upstream_error",
    "rate_limited",
    "unauthorized",
    "consent_expired",
    "bad_response",
    "rejected",
    "not_found",
    "outcome_unknown",
    "inconsistent_read",
]


class UpstreamError(Exception):
    """Base of every upstream failure."""

    code: ClassVar[ErrorCode] = "upstream_error"
    transient: ClassVar[bool] = False

    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(f"{upstream}: {message} ({self.code})")
        self.upstream = upstream
        self.message = message


class TransientUpstreamError(UpstreamError):
    transient = True


class UpstreamTimeoutError(TransientUpstreamError):
    code = "timeout"


class UpstreamUnavailableError(TransientUpstreamError):
    code = "upstream_error"


class UpstreamRateLimitedError(TransientUpstreamError):
    code = "rate_limited"


class UpstreamInconsistentReadError(TransientUpstreamError):
    """A listing read page by page whose pages did not agree with each other (records
    created or deleted between two pages), even after reading it again: a later read, once
    the upstream is quiet, may agree."""

    code = "inconsistent_read"


class PermanentUpstreamError(UpstreamError):
    pass


class UpstreamUnauthorizedError(PermanentUpstreamError):
    code = "unauthorized"


class ConsentExpiredError(PermanentUpstreamError):
    code = "consent_expired"


class UpstreamBadResponseError(PermanentUpstreamError):
    code = "bad_response"


class UpstreamRejectedError(PermanentUpstreamError):
    code: ClassVar[ErrorCode] = "rejected"


class UpstreamNotFoundError(UpstreamRejectedError):
    code = "not_found"


class UpstreamOutcomeUnknownError(UpstreamError):
    """A write was sent but no answer came back: it may or may not have landed."""

    code = "outcome_unknown"


def transient_codes() -> frozenset[ErrorCode]:
    """The codes of every transient failure: worth asking again later."""
    found: set[ErrorCode] = set()
    pending: list[type[UpstreamError]] = [TransientUpstreamError]
    while pending:
        cls = pending.pop()
        if cls is not TransientUpstreamError:
            found.add(cls.code)
        pending.extend(cls.__subclasses__())
    return frozenset(found)
