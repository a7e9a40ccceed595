"""Switchable faults for every simulator (FinSync, Finqware, the rate sources), and their route.

A `Faults` object is the live switch: tests flip it directly (``app.state.faults``), people
and scripts flip it over HTTP on each simulator::

    GET /_sandbox/faults                   -> {"mode": "none", "delay_seconds": 0.0, ...}
    PUT /_sandbox/faults {"mode": "error", "remaining": 2}

``PUT`` replaces every field (absent ones take their defaults, so ``{}`` clears all faults);
the control route needs no credentials and is not counted as an upstream call.

Modes, as each simulator answers them:

* ``error``: the vendor's own 5xx (FinSync 500 ``{"error": ...}``, Finqware error object).
* ``timeout``: holds the request ``timeout_seconds`` (``TIMEOUT_SECONDS`` unless a test
  sets it in-process), or ``delay_seconds`` if larger, then answers normally; the hold
  ends early if the client disconnects.
* ``html``: a 502 ``text/html`` page from the proxy in front of the vendor.
* ``truncated``: the normal answer, status included, with its body cut in half.
* ``rate_limited``: Finqware 400 ``external_api_error``/``external_api_too_many_requests``;
  FinSync 500 (it documents no 429).
* ``unauthorized``: 401 in the vendor's shape, whatever credentials were sent.
* ``drop_after_create``: FinSync ``POST /api/clients`` stores the client, then the
  connection drops before the answer's body (see `ConnectionDroppedError`); other
  requests, and creates it rejects, pass untouched and do not count against `remaining`.

Moving pages, FinSync only: a paged ``GET /api/clients`` (``page`` or ``pageSize`` given)
answers normally, and the list moves under the reader as it does when people keep working
in FinSync during a read. Other requests pass untouched and do not count against
`remaining`; each move counts one when it happens:

* ``delete_after_page``: right after page 1 is served, its first client is deleted, so
  every later page shifts by one (a reader of pages 2... never sees one client).
* ``create_at_front``: right after page 1 is served, a new external client (no accounts) is
  created at the front of the list, so every page shifts the other way.
* ``grow_pages``: right after page 1 is served, a page's worth of new external clients is
  created at the end, so ``totalPages`` grows by one.
* ``ignore_page``: any page but 1 is answered as page 1 (``"page": 1`` included), as a
  server that does not read the ``page`` parameter would.

``old_host_html``, the BNR simulator only (`app.sandbox.bnr`): the BNR's old host, whose
latest-rates file answers its homepage with status 200 (``text/html``) and whose yearly files
redirect there (302). Every other simulator answers normally.

On Finqware, ``"consents": ["ing-ops"]`` narrows the fault *and* ``delay_seconds`` to
requests for those consent keys (a request naming no known consent is never narrowed in);
FinSync ignores ``consents``.

Finqware's "renewed consent" is a behaviour rather than a fault, with its own switch
(``GET``/``PUT /_sandbox/renewed-consent {"on": true}``, or ``app.state.store.renewed``):
while on, a second Banca Transilvania consent, ``bt-renewed``, reaches ``bt-main``'s
accounts (same IBANs, new Finqware account ids, the RON balance an hour later), as a bank
onboarded again before the old consent ended does. See `app.sandbox.finqware`.
"""

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

import httpx2
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FaultMode = Literal[
    "none", "error", "timeout", "html", "truncated", "rate_limited", "unauthorized",
    "drop_after_create", "delete_after_page", "create_at_front", "grow_pages", "ignore_page",
    "old_host_html",
]  # fmt: skip
FAULT_MODES: tuple[FaultMode, ...] = get_args(FaultMode)

MOVING_PAGES: frozenset[FaultMode] = frozenset(
    {"delete_after_page", "create_at_front", "grow_pages", "ignore_page"}
)
"""The modes that move FinSync's paged list under a reader."""

FINSYNC_ONLY: frozenset[FaultMode] = MOVING_PAGES | {"drop_after_create"}
"""Modes about what only FinSync has (creates, a paged list): Finqware answers normally."""

TIMEOUT_SECONDS: float = 30.0
"""How long a ``timeout`` fault holds a request by default: far beyond any sane client
time-out."""

FAULTS_PATH = "/_sandbox/faults"

PROXY_BAD_GATEWAY_HTML = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@dataclass
class Faults:
    """The fault a simulator injects, how many requests it lasts, and added latency."""

    mode: FaultMode = "none"
    delay_seconds: float = 0.0
    """Added to every vendor request, faulted or not; with `consents`, on Finqware, only to
    requests for those consents (scoped like the fault)."""
    remaining: int | None = None
    """The fault hits this many more requests, then the mode reverts to ``none``."""
    consents: frozenset[str] = frozenset()
    """Finqware only: when non-empty, only requests for these consent keys are faulted."""
    timeout_seconds: float = TIMEOUT_SECONDS
    """How long a ``timeout`` fault holds a request (``delay_seconds`` if that is longer).
    Set in-process only: the control route does not show it, and its ``PUT`` resets it to
    the default like any field left out."""

    def __post_init__(self) -> None:
        _check(self.mode, self.delay_seconds, self.remaining, self.consents, self.timeout_seconds)

    def pending(self, consent: str | None = None) -> FaultMode:
        """The fault that applies to one request, without using it up.

        ``consent`` is the Finqware consent key the request names (``""`` when it names no
        known consent); ``None``, as FinSync passes, means `consents` does not narrow it.
        """
        if self.mode == "none" or (self.remaining is not None and self.remaining <= 0):
            return "none"
        if consent is not None and self.consents and consent not in self.consents:
            return "none"
        return self.mode

    def delay_for(self, consent: str | None = None) -> float:
        """The added latency of one request: `delay_seconds`, narrowed by `consents` like
        the fault (``consent`` as in `pending`)."""
        if consent is not None and self.consents and consent not in self.consents:
            return 0.0
        return self.delay_seconds

    def consume(self) -> None:
        """Count one faulted request against `remaining`."""
        if self.remaining is None:
            return
        self.remaining -= 1
        if self.remaining <= 0:
            self.mode, self.remaining = "none", None

    def replace(self, other: "Faults") -> None:
        """Take every field of ``other`` in place, so holders of this object see the change."""
        self.mode = other.mode
        self.delay_seconds = other.delay_seconds
        self.remaining = other.remaining
        self.consents = other.consents
        self.timeout_seconds = other.timeout_seconds

    def reset(self) -> None:
        """Clear every fault and the added latency."""
        self.replace(Faults())

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "delay_seconds": self.delay_seconds,
            "remaining": self.remaining,
            "consents": sorted(self.consents),
        }

    @classmethod
    def from_json(cls, payload: object) -> "Faults":
        """Build faults from a control-route body; raises `ValueError` saying what is wrong."""
        if not isinstance(payload, dict):
            raise ValueError("the body must be a JSON object")
        unknown = set(payload) - {"mode", "delay_seconds", "remaining", "consents"}
        if unknown:
            raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
        mode = payload.get("mode", "none")
        delay = payload.get("delay_seconds", 0.0)
        remaining = payload.get("remaining")
        consents = payload.get("consents", [])
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {', '.join(FAULT_MODES)}")
        # bool is an int subclass; true/false here is a caller's mistake, not a number.
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise ValueError("delay_seconds must be a number")
        if remaining is not None and (
            isinstance(remaining, bool) or not isinstance(remaining, int)
        ):
            raise ValueError("remaining must be an integer or null")
        if not isinstance(consents, list) or not all(isinstance(c, str) for c in consents):
            raise ValueError("consents must be a list of consent keys")
        return cls(
            mode=mode,
            delay_seconds=float(delay),
            remaining=remaining,
            consents=frozenset(consents),
        )


def _check(
    mode: str,
    delay_seconds: float,
    remaining: int | None,
    consents: object,
    timeout_seconds: float,
) -> None:
    if mode not in FAULT_MODES:
        raise ValueError(f"unknown fault mode {mode!r}")
    if not delay_seconds >= 0:  # also rejects NaN
        raise ValueError("delay_seconds must be >= 0")
    if not timeout_seconds >= 0:
        raise ValueError("timeout_seconds must be >= 0")
    if remaining is not None and remaining < 0:
        raise ValueError("remaining must be >= 0")
    if not isinstance(consents, frozenset):
        raise ValueError("consents must be a frozenset of consent keys")


class ConnectionDroppedError(httpx2.RemoteProtocolError):
    """Raised by a simulator to drop the connection after it has acted on a request.

    In-process (``httpx2.ASGITransport``) the exception reaches the caller as is, so it is
    the error a real dropped connection raises there; behind uvicorn the response has
    already started, so the server closes the connection and the client sees the same
    kind of error on its side.
    """


async def simulate_latency(
    request: Request, faults: Faults, mode: FaultMode, consent: str | None = None
) -> None:
    """Sleep the configured delay (for this consent, see `Faults.delay_for`), or hold the
    request for a ``timeout`` fault."""
    delay = faults.delay_for(consent)
    if mode == "timeout":
        await _hold_until_disconnect(request, max(faults.timeout_seconds, delay))
    elif delay > 0:
        await asyncio.sleep(delay)


async def _hold_until_disconnect(request: Request, seconds: float) -> None:
    # Ending on disconnect keeps a served simulator from holding dead requests for 30 s
    # (and its shutdown with them) after the client has given up.
    try:
        async with asyncio.timeout(seconds):
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return


@dataclass(frozen=True)
class VendorFaults:
    """How one simulated source answers the faults that concern it: its own 5xx, 429 and
    (when it has one) refusal page; every other mode is answered the common way (``html``
    a proxy's 502, ``truncated`` the answer cut, ``timeout`` held) or, when `answer` does
    not concern this source, as if there were no fault."""

    error: Callable[[], Response]
    rate_limited: Callable[[], Response]
    unauthorized: Callable[[], Response] | None = None

    async def serve(
        self,
        request: Request,
        faults: Faults,
        answer: Callable[[], Awaitable[Response]],
        *,
        own: Mapping[FaultMode, Callable[[], Response]] | None = None,
    ) -> Response:
        """`answer`, or the switched-on fault instead; `own` adds modes only this source
        answers (the BNR's old host), each with its answer."""
        own = own or {}
        modes = _COMMON_MODES | own.keys()
        if self.unauthorized is not None:
            modes |= {"unauthorized"}
        mode = faults.pending()
        if mode not in modes:
            mode = "none"
        if mode != "none":
            faults.consume()
        await simulate_latency(request, faults, mode)
        if mode == "error":
            return self.error()
        if mode == "html":
            return bad_gateway()
        if mode == "rate_limited":
            return self.rate_limited()
        if mode == "unauthorized" and self.unauthorized is not None:
            return self.unauthorized()
        if mode in own:
            return own[mode]()
        response = await answer()
        return truncated(response) if mode == "truncated" else response


_COMMON_MODES: frozenset[FaultMode] = frozenset(
    {"error", "timeout", "html", "truncated", "rate_limited"}
)


def bad_gateway() -> Response:
    """The page a reverse proxy serves when the vendor behind it is down."""
    return Response(PROXY_BAD_GATEWAY_HTML, status_code=502, media_type="text/html")


def truncated(response: Response) -> Response:
    """The same answer with its body cut in the middle (valid HTTP, broken JSON)."""
    body = bytes(response.body)
    return Response(
        body[: len(body) // 2],
        status_code=response.status_code,
        media_type=response.media_type,
    )


def fault_control_route(faults: Faults) -> Route:
    """``GET``/``PUT /_sandbox/faults`` over one simulator's `Faults`."""

    async def control(request: Request) -> Response:
        if request.method == "PUT":
            try:
                faults.replace(Faults.from_json(await _json_body(request)))
            except ValueError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(faults.as_json())

    return Route(FAULTS_PATH, control, methods=["GET", "PUT"])


def sends_json(request: Request) -> bool:
    """Whether the request declares a JSON body; like most JSON APIs, the vendors parse no other."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _json_body(request: Request) -> object:
    try:
        payload: object = json.loads(await request.body())
    except ValueError as exc:
        raise ValueError("the body must be JSON") from exc
    return payload
