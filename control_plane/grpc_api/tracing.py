"""gRPC calls that carry a trace context (``traceparent`` metadata: a data plane asking for
leases on a request's behalf) get a server span in that trace. Calls without one (background
renewals, usage reports, the snapshot stream) are not traced: the control plane joins traces,
it does not start them (``control_plane/core/tracing.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from shared import otel

type Handler = grpc.RpcMethodHandler[Any, Any]  # evaluated lazily: generic to mypy only


class TraceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]  # not generic at run time
    """Wraps unary calls that bring a ``traceparent`` in a server span of the caller's trace."""

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        metadata = {k: v for k, v in details.invocation_metadata or () if isinstance(v, str)}
        if handler is None or handler.unary_unary is None or "traceparent" not in metadata:
            return handler
        behaviour = handler.unary_unary
        parent = otel.PROPAGATOR.extract(metadata)
        service, _, method = details.method.lstrip("/").rpartition("/")
        tracer = self.tracer

        async def traced(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            with tracer.start_as_current_span(
                details.method.lstrip("/"),
                context=parent,
                kind=SpanKind.SERVER,
                attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": method},
            ) as span:
                try:
                    return await behaviour(request, context)  # type: ignore[arg-type]  # an aio handler takes the aio context
                finally:
                    code = context.code()
                    if code is not None and code != grpc.StatusCode.OK:
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                        span.set_status(StatusCode.ERROR, str(code.name))

        return grpc.unary_unary_rpc_method_handler(
            traced,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
