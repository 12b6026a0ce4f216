"""The control plane's gRPC server: ConfigService and UsageService on one port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import grpc
from django.conf import settings

from control_plane.grpc_api.servicers import ConfigServicer, LeaseServicer, UsageServicer
from control_plane.grpc_api.watcher import SnapshotWatcher
from shared.pb import control_pb2_grpc

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # snapshots with 100k keys exceed gRPC's 4 MiB default
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


def build_server(watcher: SnapshotWatcher, address: str) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=OPTIONS)
    # The generated registration functions carry no annotations.
    control_pb2_grpc.add_ConfigServiceServicer_to_server(ConfigServicer(watcher), server)  # type: ignore[no-untyped-call]
    control_pb2_grpc.add_UsageServiceServicer_to_server(UsageServicer(), server)  # type: ignore[no-untyped-call]
    control_pb2_grpc.add_LeaseServiceServicer_to_server(LeaseServicer(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(address)
    return server, port


async def serve(address: str, grace_s: float = 5.0) -> None:
    """Serve until SIGINT/SIGTERM, then stop with a grace period."""
    watcher = SnapshotWatcher(settings.ASC_SNAPSHOT_POLL_S)
    await watcher.refresh()
    server, port = build_server(watcher, address)
    await server.start()
    log.info("control-plane gRPC listening on %s (port %d)", address, port)
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
        log.info("control-plane gRPC stopped")
