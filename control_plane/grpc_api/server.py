"""The control plane's gRPC server: ConfigService and UsageService on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from wsgiref.simple_server import WSGIServer

import grpc
from django.conf import settings
from opentelemetry.trace import Tracer
from prometheus_client import start_http_server

from control_plane.core.tracing import SCOPE, process_provider
from control_plane.grpc_api.metrics import ControlPlaneMetrics
from control_plane.grpc_api.servicers import (
    ConfigServicer,
    LeaseServicer,
    UsageServicer,
    add_config_service,
    close_ingest_connections,
    node_status,
)
from control_plane.grpc_api.status import NodeStatus
from control_plane.grpc_api.tracing import TraceInterceptor
from control_plane.grpc_api.watcher import SnapshotWatcher
from shared.pb import control_pb2_grpc
from shared.tls import TlsFiles

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # snapshots with 100k keys exceed gRPC's 4 MiB default
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """mTLS: a client certificate signed by the fleet CA is required. The files are re-read
    whenever they change, so the server's certificate and the CA rotate without a restart."""
    seen: list[tuple[float, ...]] = []

    def configuration() -> grpc.ServerCertificateConfiguration:
        ca, cert, key = tls.read()
        seen[:] = [tls.stamp()]
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=ca)

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        try:
            return configuration() if tls.stamp() != seen[0] else None
        except OSError as exc:  # mid-rotation: keep serving with what we have
            log.warning("cannot reload TLS files: %s", exc)
            return None

    # grpc-stubs types the fetcher as never returning None; gRPC documents None as "no change".
    return grpc.dynamic_ssl_server_credentials(
        configuration(),
        fetch,  # type: ignore[arg-type]  # None means "no change" (see above)
        require_client_authentication=True,
    )


def build_server(
    watcher: SnapshotWatcher,
    address: str,
    tls: TlsFiles | None = None,
    metrics: ControlPlaneMetrics | None = None,
    tracer: Tracer | None = None,
    status: NodeStatus | None = None,
) -> tuple[grpc.aio.Server, int]:
    """``tracer``: calls that bring a trace context join it (``grpc_api/tracing.py``);
    ``status``: where usage batches' node status is noted (closed by whoever passes it)."""
    metrics = metrics or ControlPlaneMetrics()
    interceptors = [TraceInterceptor(tracer)] if tracer is not None else []
    server = grpc.aio.server(options=OPTIONS, interceptors=interceptors)
    # The generated registration functions carry no annotations.
    add_config_service(ConfigServicer(watcher, metrics), server)  # pushes encoded once
    control_pb2_grpc.add_UsageServiceServicer_to_server(
        UsageServicer(metrics, status or node_status()), server
    )  # type: ignore[no-untyped-call]  # generated, unannotated
    control_pb2_grpc.add_LeaseServiceServicer_to_server(LeaseServicer(metrics), server)  # type: ignore[no-untyped-call]  # generated, unannotated
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(tls))
    return server, port


def serve_metrics(metrics: ControlPlaneMetrics, host: str, port: int) -> WSGIServer:
    """/metrics of this process on its own port (a daemon thread); port 0 picks a free one."""
    httpd, _ = start_http_server(port, addr=host, registry=metrics.registry)
    return httpd


async def serve(address: str, grace_s: float = 5.0) -> None:
    """Serve until SIGINT/SIGTERM, then stop with a grace period."""
    watcher = SnapshotWatcher(settings.ASC_SNAPSHOT_POLL_S)
    await watcher.refresh()
    tls = TlsFiles.from_env("ASC_GRPC_TLS")
    metrics = ControlPlaneMetrics()
    provider = await asyncio.to_thread(process_provider, "asc-control-plane-grpc")
    tracer = provider.get_tracer(SCOPE) if provider is not None else None
    status = node_status()
    server, port = build_server(watcher, address, tls, metrics, tracer, status)
    metrics_port = int(os.environ.get("ASC_GRPC_METRICS_PORT", "0"))
    if metrics_port:
        host = os.environ.get("ASC_GRPC_METRICS_HOST", "127.0.0.1")
        serve_metrics(metrics, host, metrics_port)
        log.info("control-plane metrics on %s:%d/metrics", host, metrics_port)
    await server.start()
    log.info(
        "control-plane gRPC listening on %s (port %d, %s)",
        address,
        port,
        "mTLS" if tls else "plaintext: set ASC_GRPC_TLS_CA/CERT/KEY for mTLS",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    poller = asyncio.create_task(watcher.run(), name="snapshot-watcher")
    try:
        await stop.wait()
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        await server.stop(grace_s)
        await status.close()  # what the last second's batches said
        await close_ingest_connections()
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)  # the last spans exported
        log.info("control-plane gRPC stopped")
