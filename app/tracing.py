"""Optional tracing: a span per upstream call, exported by OTLP, when the `otel` extra is
installed (`pip install 'tesoro[otel]'`).

Tracing is on when OpenTelemetry's SDK can be imported, `OTEL_SDK_DISABLED` is not `true`,
and either `TESORO_TRACING_ENABLED=true` or an `OTEL_EXPORTER_OTLP_ENDPOINT` /
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` variable is set. The exporter reads the standard
`OTEL_*` variables itself (endpoint, headers, protocol, time-out), and so does the
resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`; the service name defaults to
`tesoro`). Otherwise nothing changes: no import, no span, no cost.

Spans carry the upstream, the connection, the method, the path (never the query string,
never a header) and the outcome (status code, `timeout`, `transport_error`, ...).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from app.upstreams.http import CURRENT_CONNECTION, SpanFactory, SpanOutcome

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

logger = logging.getLogger(__name__)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
INSTRUMENTATION_NAME = "tesoro"


def available() -> bool:
    """Whether the `otel` extra (SDK and OTLP exporter) is installed."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return False
    return True


def wanted(enabled_setting: bool, environ: Mapping[str, str] | None = None) -> bool:
    """Whether tracing should be set up, from the setting and the OTEL_* variables."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return enabled_setting or any(env.get(name, "").strip() for name in _ENDPOINT_VARIABLES)


def otlp_provider() -> TracerProvider:
    """A tracer provider that batches spans to the OTLP/HTTP exporter (OTEL_* configured)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": INSTRUMENTATION_NAME}).merge(
        OTELResourceDetector().detect()
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """The span factory of one app (`span`), or nothing when tracing is off (`span` None)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self.provider = provider
        self._tracer: Tracer | None = (
            None if provider is None else provider.get_tracer(INSTRUMENTATION_NAME)
        )

    @classmethod
    def from_settings(
        cls, enabled_setting: bool, installed: Callable[[], bool] = available
    ) -> Tracing:
        """On when wanted and installed; a wanted but missing extra leaves it off, saying so
        (`installed` says whether the extra can be imported)."""
        if not wanted(enabled_setting):
            return cls(None)
        if not installed():
            asked_by = (
                "TESORO_TRACING_ENABLED=true"
                if enabled_setting
                else "an OTEL_EXPORTER_OTLP_*ENDPOINT variable"
            )
            logger.warning(
                "tracing is asked for (%s) but the otel extra is not installed "
                "(pip install 'tesoro[otel]'): no span is exported",
                asked_by,
            )
            return cls(None)
        return cls(otlp_provider())

    @property
    def span(self) -> SpanFactory | None:
        return None if self._tracer is None else self._upstream_span

    @contextmanager
    def _upstream_span(self, upstream: str, method: str, path: str) -> Iterator[SpanOutcome]:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        assert self._tracer is not None
        attributes: dict[str, Any] = {
            "tesoro.upstream": upstream,
            "http.request.method": method,
            "url.path": path,
        }
        connection = CURRENT_CONNECTION.get()
        if connection is not None:
            attributes["tesoro.connection"] = connection
        with self._tracer.start_as_current_span(
            f"{method} {upstream}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            # An exception's text is not written to the span: the outcome says what failed.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            def outcome(result: str) -> None:
                span.set_attribute("tesoro.outcome", result)
                if result.isdigit():
                    span.set_attribute("http.response.status_code", int(result))
                if not result.isdigit() or int(result) >= 500:
                    span.set_status(Status(StatusCode.ERROR, result))

            yield outcome

    def shutdown(self) -> None:
        """Send the spans still batched (at the app's shutdown)."""
        if self.provider is not None:
            self.provider.shutdown()
