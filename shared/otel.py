"""OpenTelemetry set-up both planes share: where traces go (one reading of the environment)
and a tracer provider exporting there. Tracing is off unless an endpoint is configured; the
planes' own modules (data_plane/tracing.py, control_plane/core/tracing.py) make the spans."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()  # W3C traceparent / tracestate
TRACES_PATH = "/v1/traces"


def traces_endpoint(env: Mapping[str, str], variable: str) -> str:
    """The OTLP/HTTP traces URL the environment names, or "" (tracing off): the plane's own
    ``variable`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (full URLs), else
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL, ``/v1/traces`` appended)."""
    full = env.get(variable) or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if full:
        return full
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    return base.rstrip("/") + TRACES_PATH if base else ""


def build_provider(
    service_name: str,
    instance_id: str,
    *,
    endpoint: str = "",
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """A tracer provider exporting over OTLP/HTTP in batches (from a thread of its own) to
    ``endpoint``, or span by span to ``exporter`` (tests); None when neither is given.
    Resource detection reads the environment (``OTEL_RESOURCE_ATTRIBUTES``) in a thread
    pool: call this off an event loop."""
    if exporter is not None:
        processor: SimpleSpanProcessor | BatchSpanProcessor = SimpleSpanProcessor(exporter)
    elif endpoint:
        # Imported only when tracing is on: the exporter pulls in an HTTP client.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    else:
        return None
    resource = Resource.create({"service.name": service_name, "service.instance.id": instance_id})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    return provider
