"""OpenTelemetry traces of the control plane, off unless configured (``ASC_OTLP_ENDPOINT`` or
the standard ``OTEL_EXPORTER_OTLP_*`` variables: ``shared.otel.traces_endpoint``).

The control plane does not start traces of its own: it joins those a caller brings (a W3C
``traceparent``), so a data-plane request that waits for a lease shows the control plane's
span inside its own trace (docs/tracing.md). ``TraceMiddleware`` does this for the REST API and
the admin; ``control_plane/grpc_api/tracing.py`` for gRPC calls.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpRequest, HttpResponseBase
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from shared import otel

SCOPE = "asc.control_plane"


@functools.cache
def process_provider(service_name: str) -> TracerProvider | None:
    """This process's tracer provider (one per process, flushed at exit), or None: off."""
    return otel.build_provider(
        service_name, socket.gethostname(), endpoint=settings.ASC_OTLP_ENDPOINT
    )


class TraceMiddleware:
    """A server span for each request that carries a ``traceparent``, as a child of the
    caller's span. Without a tracer (tracing off) Django leaves the middleware out
    (``MiddlewareNotUsed``): no cost per request."""

    def __init__(
        self,
        get_response: Callable[[HttpRequest], HttpResponseBase],
        tracer: Tracer | None = None,
    ) -> None:
        if tracer is None:
            provider = process_provider("asc-control-plane-web")
            if provider is None:
                raise MiddlewareNotUsed("tracing is off")
            tracer = provider.get_tracer(SCOPE)
        self.get_response = get_response
        self.tracer = tracer

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.headers.get("traceparent"):
            return self.get_response(request)
        parent = otel.PROPAGATOR.extract(request.headers)
        with self.tracer.start_as_current_span(
            request.method or "HTTP",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method or "", "url.path": request.path},
        ) as span:
            response = self.get_response(request)
            match = request.resolver_match
            if match is not None and match.route:
                span.update_name(f"{request.method} /{match.route}")
                span.set_attribute("http.route", f"/{match.route}")
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(StatusCode.ERROR)
            return response
