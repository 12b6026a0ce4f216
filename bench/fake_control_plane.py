"""A stand-in control plane (gRPC) for the snapshot benchmark: it pushes the snapshots the
benchmark hands it, as pre-encoded bytes so the figures are the data plane's own, and times
each push until its ACK. Leases are granted in full and usage batches acknowledged, so a
data plane connected to it serves requests under every limit of the snapshot.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from data_plane.rpc import CHANNEL_OPTIONS
from shared.pb import control_pb2, snapshot_pb2
from shared.policy_index import varint
from shared.snapshot_parts import PART_BYTES, part_responses

GRANT = 10**17


@dataclass
class Ack:
    pushed: float  # perf_counter when the push was handed to gRPC
    acked: float  # perf_counter when its ACK or NACK arrived
    version: int
    error: str

    @property
    def seconds(self) -> float:
        return self.acked - self.pushed


@dataclass
class FakeControlPlane:
    # (nonce, a full snapshot encoded or None, a delta's response encoded)
    outbox: asyncio.Queue[tuple[str, bytes | None, bytes]] = field(default_factory=asyncio.Queue)
    pending: dict[str, float] = field(default_factory=dict)
    acks: dict[str, Ack] = field(default_factory=dict)
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, snapshot: snapshot_pb2.Snapshot | bytes) -> str:
        """Queue a snapshot (or its serialized bytes) for the connected node; the nonce. It
        goes as parts to a node that accepts them, as the control plane sends it."""
        payload = snapshot if isinstance(snapshot, bytes) else snapshot.SerializeToString()
        nonce = uuid.uuid4().hex
        self.outbox.put_nowait((nonce, payload, b""))
        return nonce

    def push_delta(self, delta: snapshot_pb2.SnapshotDelta) -> str:
        """Queue a delta for the connected node; the nonce."""
        nonce = uuid.uuid4().hex
        response = control_pb2.SnapshotResponse(nonce=nonce, delta=delta).SerializeToString()
        self.outbox.put_nowait((nonce, None, response))
        return nonce

    async def wait_ack(self, nonce: str) -> Ack:
        """The ACK (or NACK) of push ``nonce``; bound the wait with ``asyncio.timeout``."""
        while nonce not in self.acks:
            self.acked.clear()
            await self.acked.wait()
        return self.acks[nonce]

    async def stream_snapshots(
        self,
        requests: AsyncIterator[control_pb2.SnapshotRequest],
        context: grpc.aio.ServicerContext[control_pb2.SnapshotRequest, bytes],
    ) -> AsyncIterator[bytes]:
        hello = await anext(aiter(requests))

        async def read() -> None:
            async for request in requests:
                if request.response_nonce in self.pending:
                    pushed = self.pending.pop(request.response_nonce)
                    self.acks[request.response_nonce] = Ack(
                        pushed, time.perf_counter(), request.version, request.error_detail
                    )
                    self.acked.set()

        reader = asyncio.create_task(read())
        try:
            while True:
                nonce, snapshot, response = await self.outbox.get()
                self.pending[nonce] = time.perf_counter()
                if snapshot is None:
                    yield response
                elif hello.accepts_parts and len(snapshot) > PART_BYTES:
                    for part in part_responses(nonce, snapshot):
                        yield part
                else:
                    # Its nonce field plus field 2 (the snapshot), length-delimited.
                    head = control_pb2.SnapshotResponse(nonce=nonce).SerializeToString()
                    yield head + b"\x12" + varint(len(snapshot)) + snapshot
        finally:
            reader.cancel()

    async def acquire(
        self, request: control_pb2.LeaseRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> control_pb2.LeaseResponse:
        grants = [
            control_pb2.LeaseGrant(
                limit_id=ask.limit_id,
                window=ask.window,
                granted=GRANT,
                remaining=GRANT,
                ttl_ms=60_000,
                nodes=1,
            )
            for ask in request.asks
        ]
        return control_pb2.LeaseResponse(grants=grants)

    async def report_usage(
        self, batch: control_pb2.UsageBatch, context: grpc.aio.ServicerContext[object, object]
    ) -> control_pb2.UsageAck:
        return control_pb2.UsageAck(batch_id=batch.batch_id, accepted=len(batch.events))


async def start(fake: FakeControlPlane, port: int) -> grpc.aio.Server:
    server = grpc.aio.server(options=CHANNEL_OPTIONS)
    handlers = [
        grpc.method_handlers_generic_handler(
            "asc.v1.ConfigService",
            {
                "StreamSnapshots": grpc.stream_stream_rpc_method_handler(
                    fake.stream_snapshots,
                    request_deserializer=control_pb2.SnapshotRequest.FromString,
                    response_serializer=bytes,
                )
            },
        ),
        grpc.method_handlers_generic_handler(
            "asc.v1.LeaseService",
            {
                "Acquire": grpc.unary_unary_rpc_method_handler(
                    fake.acquire,
                    request_deserializer=control_pb2.LeaseRequest.FromString,
                    response_serializer=control_pb2.LeaseResponse.SerializeToString,
                )
            },
        ),
        grpc.method_handlers_generic_handler(
            "asc.v1.UsageService",
            {
                "ReportUsage": grpc.unary_unary_rpc_method_handler(
                    fake.report_usage,
                    request_deserializer=control_pb2.UsageBatch.FromString,
                    response_serializer=control_pb2.UsageAck.SerializeToString,
                )
            },
        ),
    ]
    server.add_generic_rpc_handlers(handlers)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server
