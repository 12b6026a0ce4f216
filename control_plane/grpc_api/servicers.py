"""Thin gRPC adapters over the fleet and usage services (DESIGN.md sections 2 and 5).

ConfigService.StreamSnapshots: the node says hello with the version/hash it holds; the server
pushes the latest snapshot whenever its hash differs from what the node holds, with a fresh
nonce, and keeps at most one push unacknowledged per node. The push is a delta from what the
node holds when the watcher's history has one (``deltas.DeltaHistory``), else the whole
snapshot; after a NACKed delta it is the whole snapshot. An ACK (the nonce echoed, no error)
records the applied version (in bulk, off the stream's path: ``acks.AckRecorder``); a NACK
(error_detail set) records the error, and that snapshot is not pushed to the node again; the
next version is. Those rules live in `push.PushState`; the servicer drives it with the
stream's messages, the clock and fresh nonces.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections, connection, connections

from control_plane.fleet import services as fleet
from control_plane.grpc_api.acks import AckRecorder
from control_plane.grpc_api.metrics import ControlPlaneMetrics
from control_plane.grpc_api.push import PushState
from control_plane.grpc_api.status import Health, NodeStatus
from control_plane.grpc_api.watcher import SnapshotWatcher
from control_plane.limits.services import acquire
from control_plane.rollouts import services as rollouts
from control_plane.usage.services import Ingested, ingest_batch
from shared.pb import control_pb2, control_pb2_grpc
from shared.policy_index import varint
from shared.snapshot_parts import PART_BYTES, part_responses

log = logging.getLogger(__name__)


def _db[**P, R](fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run a database function in Django's sync thread, its connection checked first
    (``_fresh_call``). One thread on purpose: with four database threads of their own the
    streams' loop waited on the GIL, and a revoked key took twice as long to reach a thousand
    nodes (docs/performance.md, issue 13)."""

    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        return _fresh_call(fn, *args, **kwargs)

    return sync_to_async(call)


# How often a database thread drops dead connections (``close_old_connections``): with health
# checks on, every drop is a query, and per call it was a tenth of the thread's time.
CHECK_CONNECTIONS_S = 1.0
_checked = threading.local()


def _fresh_call[**P, R](fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``fn`` on this thread's connection, dropped first when dead (checked at most every
    ``CHECK_CONNECTIONS_S``, and on the next call after any error)."""
    now = time.monotonic()
    if now - getattr(_checked, "at", -CHECK_CONNECTIONS_S) >= CHECK_CONNECTIONS_S:
        close_old_connections()
        _checked.at = now
    try:
        return fn(*args, **kwargs)
    except BaseException:
        _checked.at = -CHECK_CONNECTIONS_S
        raise


@functools.cache
def _ingesters() -> tuple[ThreadPoolExecutor, int]:
    """Usage batches are stored by a few threads of their own, each with its own connection,
    so several batches are in flight at once (a batch id is still stored once: a replay
    running beside the first waits on its receipt row, then is told it is a duplicate). One
    on SQLite, which has one writer at a time anyway."""
    threads = int(os.environ.get("ASC_INGEST_THREADS", "3"))
    if connection.vendor != "postgresql":
        threads = 1
    return ThreadPoolExecutor(threads, thread_name_prefix="asc-ingest"), threads


async def close_ingest_connections() -> None:
    """Close the ingesting threads' connections (when the server stops): one task on each
    thread, held at a barrier until every thread has one."""
    pool, threads = _ingesters()
    barrier = threading.Barrier(threads)

    def close() -> None:
        barrier.wait(timeout=30)
        connections.close_all()

    loop = asyncio.get_running_loop()
    await asyncio.gather(*(loop.run_in_executor(pool, close) for _ in range(threads)))


async def _ingest(batch: control_pb2.UsageBatch) -> Ingested:
    call = functools.partial(_fresh_call, ingest_batch, batch)
    return await asyncio.get_running_loop().run_in_executor(_ingesters()[0], call)


async def _record(fn: Callable[..., None], *args: object) -> None:
    """Node status is bookkeeping: a database hiccup is logged, never breaks the stream."""
    try:
        await _db(fn)(*args)
    except DatabaseError as exc:
        log.warning("cannot record node status (%s): %s", fn.__name__, exc)


def _write_status(seen: dict[str, int], health: Health) -> None:
    """What ``status.NodeStatus`` noted of nodes' usage batches: when each was seen, its spool
    depth, and its health signals for the rollout in flight."""
    for node_id, spool_depth in seen.items():
        fleet.node_seen(node_id, spool_depth)
    for node_id, signals in health.items():
        rollouts.record_health(node_id, signals)


def node_status() -> NodeStatus:
    """The usage service's node status, written at most once a second per node."""
    return NodeStatus(lambda seen, health: _record(_write_status, seen, health))


def _peer(context: Any) -> str | None:
    """The node id the peer's client certificate names (its common name); None on a
    plaintext connection."""
    names = context.auth_context().get("x509_common_name")
    return names[0].decode() if names else None


def may_speak_for(certificate_name: str, node_id: str) -> bool:
    """A certificate names one node, or a group of them by prefix ("asc-data-plane-*" for the
    pods of one Deployment, which share a certificate)."""
    if certificate_name.endswith("*"):
        return node_id.startswith(certificate_name[:-1])
    return certificate_name == node_id


async def _check_node(context: Any, claimed: str) -> None:
    """Over mTLS, a node may speak only for itself."""
    peer = _peer(context)
    if peer is not None and not may_speak_for(peer, claimed):
        log.warning("certificate of %s used to speak for node %r: refused", peer, claimed)
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the certificate names another node")


def full_response(nonce: str, snapshot: bytes) -> bytes:
    """An encoded ``SnapshotResponse`` carrying an encoded snapshot, without decoding it or
    encoding it again (the snapshot is field 2, length-delimited)."""
    return _response(nonce, b"\x12", snapshot)


def full_responses(nonce: str, snapshot: bytes, *, parts: bool) -> Iterator[bytes]:
    """A full snapshot's push: in parts (``shared.snapshot_parts``) to a node that takes
    them when it is larger than a part, else in one response."""
    if parts and len(snapshot) > PART_BYTES:
        yield from part_responses(nonce, snapshot, PART_BYTES)
    else:
        yield full_response(nonce, snapshot)


def delta_response(nonce: str, delta: bytes) -> bytes:
    """An encoded ``SnapshotResponse`` carrying an encoded delta (field 3, length-delimited)."""
    return _response(nonce, b"\x1a", delta)


def _response(nonce: str, tag: bytes, body: bytes) -> bytes:
    head = control_pb2.SnapshotResponse(nonce=nonce).SerializeToString()
    return b"".join((head, tag, varint(len(body)), body))


def add_config_service(servicer: ConfigServicer, server: grpc.aio.Server) -> None:
    """``add_ConfigServiceServicer_to_server`` for responses the servicer encodes itself
    (``full_response``, ``delta_response``): no serializer."""
    handlers = {
        "StreamSnapshots": grpc.stream_stream_rpc_method_handler(
            servicer.StreamSnapshots,
            request_deserializer=control_pb2.SnapshotRequest.FromString,
            response_serializer=None,
        )
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("asc.v1.ConfigService", handlers),)
    )


class ConfigServicer(control_pb2_grpc.ConfigServiceServicer):
    def __init__(self, watcher: SnapshotWatcher, metrics: ControlPlaneMetrics) -> None:
        self.watcher = watcher
        self.metrics = metrics
        self.acks = AckRecorder(lambda *ack: _record(fleet.nodes_acked, *ack))

    async def StreamSnapshots(  # gRPC method name
        self,
        request_iterator: AsyncIterator[control_pb2.SnapshotRequest],
        context: grpc.aio.ServicerContext[control_pb2.SnapshotRequest, bytes],
    ) -> None:
        hello = await anext(aiter(request_iterator), None)
        if hello is None or not hello.node.id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message names the node"
            )
            return
        node_id = hello.node.id
        await _check_node(context, node_id)
        push = PushState(hello.version, hello.hash)
        parts = hello.accepts_parts  # a large full snapshot goes in parts of a MiB
        self.metrics.connected_nodes.inc()
        await _record(fleet.node_connected, hello.node, hello.version, hello.hash)
        log.info("node %s connected holding v%d", node_id, hello.version)
        reader = asyncio.ensure_future(anext(aiter(request_iterator), None))
        try:
            while True:
                latest = self.watcher.latest
                if latest is not None:
                    self.metrics.snapshot_version.set(latest.version)
                    # What this node is owed: a staged rollout may hold it on another version.
                    latest = self.watcher.for_node(node_id) or latest
                    if push.due(latest.hash):
                        nonce = uuid.uuid4().hex
                        delta = None
                        if not push.needs_full:
                            delta = self.watcher.deltas.encoded_delta_for(
                                push.version, push.hash, latest.hash
                            )
                        push.pushed(nonce, latest.hash, time.monotonic(), delta=delta is not None)
                        if delta is not None:
                            await context.write(delta_response(nonce, delta))
                        else:
                            encoded = self.watcher.encoded(latest)
                            for response in full_responses(nonce, encoded, parts=parts):
                                await context.write(response)
                if push.pending is None:
                    # The watcher's future is shared by every stream: waited on, never
                    # cancelled.
                    waiting: set[asyncio.Future[Any]] = {reader, self.watcher.changed()}
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    if reader not in done:
                        continue
                # With a push unanswered nothing else is due: the node's next message alone is
                # awaited. Waiting on the shared future too cost every ACK a scan of the
                # future's callbacks, one per waiting stream (asyncio.wait removes its own from
                # each future it waited on): up to a million for a change to a thousand nodes.
                message = await reader
                if message is None:
                    return
                reader = asyncio.ensure_future(anext(aiter(request_iterator), None))
                answer = push.answered(
                    message.response_nonce,
                    version=message.version,
                    hash=message.hash,
                    error=message.error_detail,
                    now=time.monotonic(),
                )
                if answer is None:
                    continue  # stale or unsolicited: only the current push is answered
                self.metrics.push_to_ack.labels(answer.result).observe(answer.waited)
                if answer.result == "nack":
                    what = "a delta" if answer.delta else "a snapshot"
                    log.warning("node %s refused %s: %s", node_id, what, answer.error)
                    await _record(fleet.node_nacked, node_id, answer.error)
                    if not answer.delta:  # a refused version: a canary's stops its rollout
                        await _record(rollouts.node_refused, node_id, answer.hash, answer.error)
                else:
                    self.acks.acked(node_id, push.version, push.hash)
        finally:
            self.metrics.connected_nodes.dec()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            await _record(fleet.node_disconnected, node_id)
            log.info("node %s disconnected", node_id)


class LeaseServicer(control_pb2_grpc.LeaseServiceServicer):
    def __init__(self, metrics: ControlPlaneMetrics) -> None:
        self.metrics = metrics

    async def Acquire(  # gRPC method name
        self,
        request: control_pb2.LeaseRequest,
        context: grpc.aio.ServicerContext[control_pb2.LeaseRequest, control_pb2.LeaseResponse],
    ) -> control_pb2.LeaseResponse:
        if not request.node_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "node_id is required")
        await _check_node(context, request.node_id)
        try:
            grants = await _db(acquire)(request.node_id, request.asks, time.time())
        except DatabaseError as exc:
            log.warning("cannot grant leases to %s: %s", request.node_id, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the lease ledger is unavailable")
        self.metrics.lease_grants.inc(len(grants))
        return control_pb2.LeaseResponse(grants=grants)


class UsageServicer(control_pb2_grpc.UsageServiceServicer):
    def __init__(self, metrics: ControlPlaneMetrics, status: NodeStatus) -> None:
        self.metrics = metrics
        self.status = status

    async def ReportUsage(  # gRPC method name
        self,
        request: control_pb2.UsageBatch,
        context: grpc.aio.ServicerContext[control_pb2.UsageBatch, control_pb2.UsageAck],
    ) -> control_pb2.UsageAck:
        if not request.batch_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch_id is required")
        await _check_node(context, request.node_id)
        try:
            result = await _ingest(request)
        except DatabaseError as exc:
            log.warning("cannot store usage batch %s: %s", request.batch_id, exc)
            self.metrics.usage_batches.labels("error").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the usage store is unavailable")
        self.metrics.usage_batches.labels("duplicate" if result.duplicate else "stored").inc()
        self.metrics.usage_events.inc(result.accepted)
        if not result.duplicate and (circuits := fleet.circuit_sightings(request.events)):
            await _record(fleet.circuits_seen, request.node_id, circuits)
        health = () if result.duplicate else request.health
        await self.status.batch(request.node_id, request.spool_depth, health)
        return control_pb2.UsageAck(
            batch_id=request.batch_id, accepted=result.accepted, duplicate=result.duplicate
        )
