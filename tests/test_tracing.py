"""Tracing: a span per upstream call when the `otel` extra is there and asked for; nothing
otherwise."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from starlette.testclient import TestClient

from app.main import create_app
from app.sandbox.data import (
    FINQWARE_CLIENT_SECRET,
    FINSYNC_API_KEY,
    SANDBOX_CONSENTS,
)
from app.settings import Settings
from app.tracing import Tracing, available, wanted
from tests.support.simulators import Simulators


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(exporter: InMemorySpanExporter) -> Iterator[Tracing]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider)
    provider.shutdown()


def app_client(simulators: Simulators, tracing: Tracing) -> TestClient:
    settings = Settings(_env_file=None, sandbox=True, failure_backoff_seconds=0)
    return TestClient(create_app(settings, transport=simulators.transport(), tracing=tracing))


def by_connection(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        attributes = span.attributes or {}
        found.setdefault(str(attributes.get("tesoro.connection")), []).append(span)
    return found


def test_each_upstream_call_is_a_client_span_naming_its_connection(
    exporter: InMemorySpanExporter, traced: Tracing
) -> None:
    with app_client(Simulators.fresh(), traced) as client:
        assert client.get("/positions").status_code == 200

    spans = exporter.get_finished_spans()
    connections = by_connection(spans)
    assert set(connections) == {
        "finsync",
        "finqware:bt-main",
        "finqware:ing-ops",
        "finqware:brd-legacy",
    }
    (finsync,) = connections["finsync"]
    assert finsync.name == "GET finsync"
    assert finsync.kind is SpanKind.CLIENT
    assert finsync.attributes is not None
    assert finsync.attributes["tesoro.upstream"] == "finsync"
    assert finsync.attributes["url.path"] == "/api/clients"
    assert finsync.attributes["http.response.status_code"] == 200
    assert finsync.attributes["tesoro.outcome"] == "200"
    assert finsync.status.status_code is StatusCode.UNSET
    names = {span.name for span in connections["finqware:bt-main"]}
    assert names == {"POST finqware"}
    assert len(connections["finqware:bt-main"]) == 2  # balances and accounts
    # The expired consent: answered 401, recorded as such.
    expired = connections["finqware:brd-legacy"]
    assert {span.attributes["tesoro.outcome"] for span in expired if span.attributes} == {"401"}


def test_a_failed_call_is_an_error_span_and_no_secret_is_recorded(
    exporter: InMemorySpanExporter, traced: Tracing
) -> None:
    simulators = Simulators.fresh()
    simulators.finsync_faults.mode = "error"
    with app_client(simulators, traced) as client:
        assert client.get("/positions").status_code == 200

    spans = exporter.get_finished_spans()
    (finsync,) = by_connection(spans)["finsync"]
    assert finsync.status.status_code is StatusCode.ERROR
    assert finsync.attributes is not None
    assert finsync.attributes["tesoro.outcome"] == "500"
    recorded = repr([(s.name, dict(s.attributes or {}), s.events, s.status) for s in spans])
    secrets = [FINSYNC_API_KEY, FINQWARE_CLIENT_SECRET]
    secrets += [c.access_token for c in SANDBOX_CONSENTS]
    secrets += [c.credentials_id for c in SANDBOX_CONSENTS]
    for secret in secrets:
        assert secret not in recorded


def test_without_tracing_nothing_is_traced(exporter: InMemorySpanExporter) -> None:
    off = Tracing(None)
    assert off.span is None
    with app_client(Simulators.fresh(), off) as client:
        assert client.get("/positions").status_code == 200
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        (False, {}, False),
        (True, {}, True),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        (False, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318"}, True),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        (True, {"OTEL_SDK_DISABLED": "true"}, False),
        (False, {"OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, False),
        (True, {"OTEL_SDK_DISABLED": "false"}, True),
    ],
)
def test_when_tracing_is_wanted(setting: bool, environ: dict[str, str], expected: bool) -> None:
    assert wanted(setting, environ) is expected


def test_settings_and_otel_variables_make_an_otlp_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert available()
    assert Tracing.from_settings(False).span is None

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "tesoro-staging")
    tracing = Tracing.from_settings(False)
    try:
        assert tracing.span is not None
        assert isinstance(tracing.provider, TracerProvider)
        assert tracing.provider.resource.attributes["service.name"] == "tesoro-staging"
    finally:
        tracing.shutdown()  # no span was made: nothing is sent

    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert Tracing.from_settings(True).span is None


def test_tracing_asked_for_without_the_otel_extra_says_so_and_stays_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    with caplog.at_level("WARNING", logger="app.tracing"):
        assert Tracing.from_settings(True, installed=lambda: False).span is None
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        assert Tracing.from_settings(False, installed=lambda: False).span is None
        # Not asked for: nothing to say, whether or not the extra is there.
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
        assert Tracing.from_settings(False, installed=lambda: False).span is None
    assert [record.getMessage() for record in caplog.records] == [
        "tracing is asked for (TESORO_TRACING_ENABLED=true) but the otel extra is not "
        "installed (pip install 'tesoro[otel]'): no span is exported",
        "tracing is asked for (an OTEL_EXPORTER_OTLP_*ENDPOINT variable) but the otel extra "
        "is not installed (pip install 'tesoro[otel]'): no span is exported",
    ]
    assert all(record.levelname == "WARNING" for record in caplog.records)


# Run in a process of its own: the global providers can be set once per process.
_GLOBAL_PROVIDERS = """
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
with TestClient(create_app(Settings(_env_file=None, sandbox=True))) as client:
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
data = reader.get_metrics_data()
points = 0 if data is None else sum(
    len(scope.metrics) for resource in data.resource_metrics for scope in resource.scope_metrics
)
print(len(exporter.get_finished_spans()), points)
"""


def test_a_global_provider_set_by_someone_else_adds_no_request_span_or_metric() -> None:
    # tesoro traces its upstream calls with its own provider and counts requests in its own
    # Prometheus metrics; FastAPI's native telemetry is off, so a provider installed globally
    # (auto-instrumentation) neither doubles them nor costs every request its checks.
    ran = subprocess.run(
        [sys.executable, "-c", _GLOBAL_PROVIDERS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["0", "0"]
