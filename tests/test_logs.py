"""Logs: structlog lines, one access line per request, the request id on every line of a
request, upstream failures named by connection and code, and never a credential."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
import stamina
import structlog
from pydantic import SecretStr
from starlette.testclient import TestClient

from app.logs import (
    access_line,
    add_secrets,
    configure_logging,
    log_access,
    redact_query,
    redact_text,
    utc_now_text,
)
from app.main import create_app
from app.settings import ConsentSettings, Settings
from tests.support.apps import sandbox_app
from tests.support.keys import READ_KEY, WRITE_KEY, bearer, reader_and_writer
from tests.support.simulators import Simulators


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Logging configured as `tesoro serve` does, into a buffer; restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/positions", "/positions"),
        ("/positions?page=2&currency=ARS", "/positions?page=2&currency=ARS"),
        ("/positions?api_key=sk_live_1&page=2", "/positions?api_key=[hidden]&page=2"),
        (
            "/x?access_token=abc&Password=p&SECRET=s",
            "/x?access_token=[hidden]&Password=[hidden]&SECRET=[hidden]",
        ),
    ],
)
def test_credential_like_query_values_are_hidden(path: str, expected: str) -> None:
    assert redact_query(path) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer sk_live_abcdef123", "Authorization: Bearer [hidden]"),
        ('{"authorization": "Basic dXNlcjpwYXNz"}', '{"authorization": "Basic [hidden]"}'),
        ("{'x-api-key': 'fs_live_0a1b2c'}", "{'x-api-key': '[hidden]'}"),
        ("sent Bearer tok_123456 twice", "sent Bearer [hidden] twice"),
        ("basic settings are fine", "basic settings are fine"),
    ],
)
def test_credentials_in_text_are_hidden(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_configured_secrets_are_hidden_anywhere_in_a_line(captured: io.StringIO) -> None:
    add_secrets(["cfg-secret-7d1e4b90c2"])
    logging.getLogger("app.test").warning(
        "calling with cfg-secret-7d1e4b90c2",
        extra={"nested": {"deep": ["x cfg-secret-7d1e4b90c2 y"]}, "authorization": "anything"},
    )
    try:
        raise RuntimeError("failed: cfg-secret-7d1e4b90c2")
    except RuntimeError:
        logging.getLogger("app.test").exception("boom")

    text = captured.getvalue()
    assert "cfg-secret-7d1e4b90c2" not in text
    first, second = lines(captured)
    assert first["event"] == "calling with [hidden]"
    assert first["nested"] == {"deep": ["x [hidden] y"]}
    assert first["authorization"] == "[hidden]"
    assert first["level"] == "warning"
    assert first["logger"] == "app.test"
    assert "timestamp" in first
    assert "RuntimeError: failed: [hidden]" in second["exception"]


def test_library_lines_are_json_too(captured: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "\x1b[36m%d\x1b[0m"}
    )

    (line,) = lines(captured)
    assert line["event"] == "Started server process [42]"
    assert line["logger"] == "uvicorn.error"
    assert "color_message" not in line


def test_console_format_is_one_readable_line(captured: io.StringIO) -> None:
    stream = io.StringIO()
    configure_logging("console", "info", stream=stream)
    logging.getLogger("app.test").info("hello", extra={"connection": "finsync"})
    logging.getLogger("app.test").debug("not shown at info")

    text = stream.getvalue()
    assert "hello" in text
    assert "connection=finsync" in text
    assert "not shown" not in text
    assert not text.lstrip().startswith("{")


def test_one_access_line_per_request_with_route_template_and_request_id(
    captured: io.StringIO,
) -> None:
    settings = Settings(_env_file=None, sandbox=True)
    with TestClient(create_app(settings)) as client:
        response = client.get("/counterparties/finsync:101", headers={"X-Request-ID": "req-42"})
        assert response.status_code == 200
        assert client.get("/no/such/path").status_code == 404

    access = [line for line in lines(captured) if line["logger"] == "app.access"]
    assert len(access) == 2
    first, second = access
    assert first["event"] == "request"
    assert first["method"] == "GET"
    assert first["route"] == "/counterparties/{counterparty_id}"
    assert first["status"] == 200
    assert first["request_id"] == "req-42"
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] >= 0
    assert (second["route"], second["status"]) == ("unmatched", 404)
    assert second["request_id"] != "req-42"
    # Routine upstream calls of the request: DEBUG, carrying its id and its connection.
    calls = [line for line in lines(captured) if line["logger"] == "app.upstreams.http"]
    assert calls, "the look-up called FinSync"
    assert all(line["level"] == "debug" for line in calls)
    assert {line["request_id"] for line in calls} == {"req-42"}
    assert all(line["upstream"] == "finsync" for line in calls)


# Real-looking secrets: what a leak would look like in production.
FINSYNC_KEY = "fs_live_5f0c3e9a1b7d4c2e8f6a"
FINQWARE_SECRET = "fqs_4b1d9e7c2a6f8e0d3c5b"
ACCESS_TOKEN = "at_live_9c8b7a6f5e4d3c2b1a00"
CREDENTIALS_ID = "cid-2e5f7a9c-1b3d-4e6f-8a0c"
WRONG_KEY = "reader-key-9876543210"


class EchoingUpstreams:
    """Upstreams that fail and echo what they were sent: headers, body, everything; with
    `bug` set, the call raises an unexpected error carrying that text (a bug's traceback is
    logged)."""

    def __init__(self) -> None:
        self.bug = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        echoed = f"{request.method} {request.url} headers={dict(request.headers)} body="
        echoed += request.content.decode()
        if self.bug:
            raise RuntimeError(f"unexpected: {echoed}")
        if request.url.host == "finsync.example":
            return httpx2.Response(500, json={"error": echoed})
        return httpx2.Response(
            500, json={"type": "api_error", "code": "internal", "message": echoed}
        )


def test_no_secret_and_no_caller_key_is_ever_logged(captured: io.StringIO) -> None:
    settings = Settings(
        _env_file=None,
        finsync_base_url="https://finsync.example",
        finsync_api_key=SecretStr(FINSYNC_KEY),
        finqware_base_url="https://finqware.example/v1",
        finqware_client_id="tenant-andes",
        finqware_client_secret=SecretStr(FINQWARE_SECRET),
        finqware_consents=[
            ConsentSettings(
                key="bt-main",
                label="BT",
                credentials_id=SecretStr(CREDENTIALS_ID),
                access_token=SecretStr(ACCESS_TOKEN),
                tenant_user_id="andes",
            )
        ],
        api_keys=reader_and_writer(),
        failure_backoff_seconds=0,
        min_refresh_interval_seconds=0,
        upstream_retry_attempts=2,
    )
    upstreams = EchoingUpstreams()
    app = create_app(settings, transport=httpx2.MockTransport(upstreams))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/positions", headers=bearer(READ_KEY)).status_code == 503
        assert client.get("/positions", headers=bearer(WRONG_KEY)).status_code == 401
        assert client.get(f"/positions?api_key={READ_KEY}").status_code == 401
        client.post("/counterparties", headers=bearer(WRITE_KEY), json={"name": "Acme"})
        upstreams.bug = True
        assert client.get("/positions", headers=bearer(WRITE_KEY)).status_code == 500

    text = captured.getvalue()
    records = lines(captured)
    # The failures were logged, named by connection and code, and a bug with its traceback.
    failures = [r for r in records if r.get("code") and r.get("connection")]
    assert {(r["connection"], r["code"]) for r in failures} >= {
        ("finsync", "upstream_error"),
        ("finqware:bt-main", "upstream_error"),
    }
    assert any("RuntimeError" in r.get("exception", "") for r in records)
    assert any(r["level"] == "warning" and r.get("upstream") == "finqware" for r in records)
    for secret in (FINSYNC_KEY, FINQWARE_SECRET, ACCESS_TOKEN, CREDENTIALS_ID):
        assert secret not in text, secret
    for caller_key in (READ_KEY, WRITE_KEY, WRONG_KEY):
        assert caller_key not in text, caller_key


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_access_line_in_console_format_and_without_configuration(
    captured: io.StringIO,
) -> None:
    stream = io.StringIO()
    configure_logging("console", "info", stream=stream)
    log_access("POST", "/counterparties", 201, 0.0042)
    assert "request" in stream.getvalue()
    assert "route=/counterparties" in stream.getvalue()
    assert "status=201" in stream.getvalue()

    # Not configured (an embedding app, a test): an ordinary `logging` record.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    collector = Collector()
    root.addHandler(collector)
    log_access("GET", "/positions", 200, 0.001)
    (record,) = collector.records
    assert record.getMessage() == "request"
    assert record.__dict__["route"] == "/positions"
    assert record.__dict__["duration_ms"] == 1.0


def test_a_failed_bank_load_is_one_warning(captured: io.StringIO) -> None:
    # brd-legacy's consent has expired: its balances and its account names both fail, in
    # one load of the connection, which is one event.
    with TestClient(sandbox_app()) as client:
        assert client.get("/positions").status_code == 200
    warnings = [line for line in lines(captured) if line["level"] == "warning" and "code" in line]
    failed = [line for line in warnings if line["connection"] == "finqware:brd-legacy"]
    assert len(failed) == 1, failed
    assert failed[0]["code"] == "consent_expired"
    assert failed[0]["logger"] == "app.cache"


class AccountListFails(httpx2.AsyncBaseTransport):
    """Finqware's account list answers 500; every other call goes to `inner`."""

    def __init__(self, inner: httpx2.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/accounts/get"):
            return httpx2.Response(
                500, json={"type": "api_error", "code": "internal", "message": "down"}
            )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_account_names_failing_alone_are_one_warning_of_their_own(
    captured: io.StringIO,
) -> None:
    # Only the account list fails (a 500 for every consent), the balances are served.
    transport = AccountListFails(Simulators.fresh().transport())
    with TestClient(sandbox_app(transport=transport)) as client:
        answer = client.get("/positions?counterparty_id=finqware:ing-ops")
    assert answer.json()["sources"][0]["status"] == "ok"
    # The failed call has its line (app.upstreams.http); the connection one line for it.
    failures = [line for line in lines(captured) if line["level"] == "warning" and "code" in line]
    assert [(line["connection"], line["code"]) for line in failures] == [
        ("finqware:ing-ops", "upstream_error")
    ]
    assert "account names failed, balances served" in failures[0]["event"]


def test_a_retry_is_one_line_in_tesoros_words(captured: io.StringIO) -> None:
    simulators = Simulators.fresh()
    simulators.finsync_faults.mode = "error"
    simulators.finsync_faults.remaining = 1
    with stamina.set_testing(True, attempts=2), TestClient(sandbox_app(simulators)) as client:
        answer = client.get("/positions?source=finsync", headers={"X-Request-ID": "req-retry"})
    assert answer.json()["complete"] is True
    records = lines(captured)
    (retried,) = [line for line in records if "after a transient failure" in line["event"]]
    assert retried["event"] == "finsync GET: try 2 after a transient failure"
    assert retried["logger"] == "app.upstreams.http"
    assert (retried["upstream"], retried["connection"]) == ("finsync", "finsync")
    assert retried["request_id"] == "req-retry"
    # The retry library's own line for the same retry (stamina.retry_scheduled) is not written.
    assert not [line for line in records if "stamina" in line["event"] + line["logger"]]


def test_uvicorns_lines_follow_the_configured_level_whatever_set_theirs_before(
    captured: io.StringIO,
) -> None:
    # A uvicorn.Config(log_level="warning") made earlier in the process (a test server, a
    # benchmark) set uvicorn's loggers' own level; configuring logging puts them back on ours.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    configure_logging("json", "info", stream=captured)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    assert [line["event"] for line in lines(captured)] == ["Application startup complete."]


@pytest.mark.parametrize(
    "request_id",
    [None, "4f1c2a0b9d8e7f6a0000000000000001", "req.1:a-b_c", 'a"b', "a\\b", "é", "\x7f", ""],
)
@pytest.mark.parametrize("duration_ms", [0.0, 0.123, 1e-05, 12345.678, 1e20])
def test_the_access_line_is_the_json_of_its_fields(
    request_id: str | None, duration_ms: float
) -> None:
    # Written without the JSON encoder in the usual case: byte for byte what it would write.
    fields: dict[str, object] = {
        "event": "request",
        "level": "info",
        "logger": "app.access",
        "method": "GET",
        "route": "/counterparties/{counterparty_id}",
        "status": 404,
        "duration_ms": duration_ms,
        "timestamp": "2026-12-02T13:04:05.123456Z",
    }
    if request_id is not None:
        fields["request_id"] = request_id
    written = access_line(
        "GET",
        "/counterparties/{counterparty_id}",
        404,
        duration_ms,
        "2026-12-02T13:04:05.123456Z",
        request_id,
    )
    assert written == json.dumps(fields) + "\n"


def test_the_access_line_s_time_is_what_datetime_writes_whatever_second_came_before() -> None:
    # The text to the second is kept for the next line of the same second: each moment,
    # taken after one of another second or of the same, reads as datetime writes it.
    moments = [
        1_764_680_645_123_456_789,
        1_764_680_645_999_999_999,  # the same second
        1_764_680_645_000_000_999,  # the same second, 0 microseconds: none written
        1_764_680_646_000_001_000,  # the next second
        1_764_680_645_500_000_000,  # back a second (the clock stepped)
        1_798_761_599_999_999_000,  # the last second of 2026
        1_798_761_600_000_000_000,  # the first of 2027, 0 microseconds
        0,
    ]
    for now_ns in moments:
        seconds, rest = divmod(now_ns, 1_000_000_000)
        expected = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
        assert utc_now_text(now_ns) == expected.isoformat().replace("+00:00", "Z")
