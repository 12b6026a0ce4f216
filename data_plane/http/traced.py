"""The pipeline's hooks into its request's trace (``data_plane/tracing.py``).

Each takes the request's ``RequestTrace``, or None when tracing is off, and then does nothing:
the pipeline stays one line per hook and pays a ``None`` check when traces are off.
"""

from __future__ import annotations

from aiohttp import web
from opentelemetry.trace import Tracer

from data_plane.errors import ApiError
from data_plane.http.appkeys import REQUEST_ID
from data_plane.policy.auth import Principal
from data_plane.tracing import RequestTrace
from data_plane.types import Usage
from data_plane.usage.record import RequestRecord

# None when tracing is off (no OTLP endpoint configured, no exporter given).
TRACER = web.AppKey[Tracer | None]("tracer")


def begin(request: web.Request) -> RequestTrace | None:
    """The request's server span, joining the caller's trace when it sent a ``traceparent``."""
    tracer = request.app[TRACER]
    if tracer is None:
        return None
    return RequestTrace(tracer, request.method, request.path, request.headers, request[REQUEST_ID])


def authenticated(trace: RequestTrace | None, principal: Principal) -> None:
    if trace is not None:
        tenant = principal.tenant
        trace.authenticated(tenant.slug, tenant.trace_prompts)


def refused(trace: RequestTrace | None, error: ApiError) -> None:
    """A refusal before anyone was authenticated (no snapshot, bad credentials)."""
    if trace is not None:
        trace.finish(
            status=error.status,
            error_code=error.code,
            route_name="",
            target=None,
            usage=Usage(),
            fallbacks=0,
        )


def end(trace: RequestTrace | None, record: RequestRecord) -> None:
    if trace is not None:
        trace.finish(
            status=record.status,
            error_code=record.error_code,
            route_name=record.route_name,
            target=record.target,
            usage=record.usage,
            fallbacks=len(record.fallbacks),
            cache_hit=record.cache_hit,
        )
