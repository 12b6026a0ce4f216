"""The control plane joins the traces callers bring (control_plane/core/tracing.py,
control_plane/grpc_api/tracing.py): a lease ask sent by the data plane's gRPC client inside a
request's trace gets a server span in that trace, over a real socket; a call without a trace
context gets none; the REST middleware does the same for HTTP and is left out when tracing is
off."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import MiddlewareNotUsed
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

from control_plane.core.tracing import TraceMiddleware
from control_plane.grpc_api.server import build_server
from control_plane.grpc_api.servicers import close_ingest_connections
from control_plane.grpc_api.watcher import SnapshotWatcher
from data_plane.rpc import GrpcLeaseSource
from data_plane.tracing import remote_parent
from shared.pb import control_pb2

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def joined(span: ReadableSpan) -> tuple[str, str]:
    assert span.parent is not None
    return format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x")


@pytest.fixture
async def lease_source(tracer: Tracer) -> AsyncIterator[GrpcLeaseSource]:
    server, port = build_server(SnapshotWatcher(poll_s=60), "127.0.0.1:0", tracer=tracer)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield GrpcLeaseSource(channel, timeout_s=10)
    await server.stop(0)
    await close_ingest_connections()
    await sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
async def test_a_lease_ask_in_a_trace_is_a_server_span_of_that_trace(
    lease_source: GrpcLeaseSource, exporter: InMemorySpanExporter
) -> None:
    ask = control_pb2.LeaseRequest(node_id="dp-traced")
    with remote_parent({"traceparent": TRACEPARENT}):
        await lease_source.acquire(ask)
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "asc.v1.LeaseService/Acquire"
    assert joined(span) == (TRACE, PARENT)
    assert dict(span.attributes or {})["rpc.method"] == "Acquire"

    exporter.clear()
    await lease_source.acquire(ask)  # a background renewal: no trace to join
    await asyncio.sleep(0)
    assert exporter.get_finished_spans() == ()


@pytest.mark.django_db(transaction=True)
async def test_a_refused_ask_is_an_error_span(
    lease_source: GrpcLeaseSource, exporter: InMemorySpanExporter
) -> None:
    with remote_parent({"traceparent": TRACEPARENT}), pytest.raises(grpc.aio.AioRpcError):
        await lease_source.acquire(control_pb2.LeaseRequest())  # no node id: refused
    (span,) = exporter.get_finished_spans()
    assert joined(span) == (TRACE, PARENT)
    assert not span.status.is_ok


def test_the_rest_middleware_joins_the_callers_trace(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=201)

    middleware = TraceMiddleware(view, tracer=tracer)
    factory = RequestFactory()
    response = middleware(factory.post("/api/v1/keys/", headers={"traceparent": TRACEPARENT}))
    assert response.status_code == 201
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert joined(span) == (TRACE, PARENT)
    assert dict(span.attributes or {})["http.response.status_code"] == 201

    exporter.clear()
    middleware(factory.get("/api/v1/keys/"))
    assert exporter.get_finished_spans() == (), "no traceparent: nothing to join"


def test_with_tracing_off_django_leaves_the_middleware_out() -> None:
    with pytest.raises(MiddlewareNotUsed):
        TraceMiddleware(lambda request: HttpResponse())
