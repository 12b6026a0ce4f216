"""Typed client calls of the control plane's gRPC services.

The generated ``*_pb2_grpc`` stubs are untyped; these build the same multicallables on a
``grpc.aio`` channel with the generated message classes, so callers are type-checked.
"""

from __future__ import annotations

import grpc

from data_plane.tracing import outgoing_metadata
from shared.pb import control_pb2
from shared.tls import TlsFiles

MAX_MESSAGE_BYTES = 256 * 1024 * 1024

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # The channel's own reconnect backoff (1 s growing to 120 s by default) would keep a call
    # failing at once for up to two minutes after the control plane is back: held to the
    # snapshot stream's (``backoff.RECONNECT_S``).
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 10_000),
]

# Responses arrive encoded: a full snapshot is decoded by the config client a slice at a time
# (data_plane/snapshots/applier.py), not in one call on the event loop.
SnapshotStream = grpc.aio.StreamStreamCall[control_pb2.SnapshotRequest, bytes]


def open_channel(address: str, tls: TlsFiles | None = None) -> grpc.aio.Channel:
    """Plaintext, or mTLS with this node's certificate (files read once, at start)."""
    if tls is None:
        return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
    ca, cert, key = tls.read()
    credentials = grpc.ssl_channel_credentials(ca, private_key=key, certificate_chain=cert)
    return grpc.aio.secure_channel(address, credentials, options=CHANNEL_OPTIONS)


def stream_snapshots(channel: grpc.aio.Channel) -> SnapshotStream:
    method: grpc.aio.StreamStreamMultiCallable[control_pb2.SnapshotRequest, bytes] = (
        channel.stream_stream(
            "/asc.v1.ConfigService/StreamSnapshots",
            request_serializer=control_pb2.SnapshotRequest.SerializeToString,
            response_deserializer=None,
        )
    )
    return method(None)  # None: requests are written with call.write()


class GrpcUsageClient:
    """UsageService.ReportUsage with a deadline on every call."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._timeout = timeout_s
        self._call: grpc.aio.UnaryUnaryMultiCallable[
            control_pb2.UsageBatch, control_pb2.UsageAck
        ] = channel.unary_unary(
            "/asc.v1.UsageService/ReportUsage",
            request_serializer=control_pb2.UsageBatch.SerializeToString,
            response_deserializer=control_pb2.UsageAck.FromString,
        )

    async def report(self, batch: control_pb2.UsageBatch) -> control_pb2.UsageAck:
        return await self._call(batch, timeout=self._timeout)


class GrpcLeaseSource:
    """LeaseService.Acquire with a deadline on every call, and the trace context (gRPC
    metadata ``traceparent``) of the request that waits for it, if any."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._timeout = timeout_s
        self._call: grpc.aio.UnaryUnaryMultiCallable[
            control_pb2.LeaseRequest, control_pb2.LeaseResponse
        ] = channel.unary_unary(
            "/asc.v1.LeaseService/Acquire",
            request_serializer=control_pb2.LeaseRequest.SerializeToString,
            response_deserializer=control_pb2.LeaseResponse.FromString,
        )

    async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse:
        return await self._call(request, timeout=self._timeout, metadata=outgoing_metadata())
