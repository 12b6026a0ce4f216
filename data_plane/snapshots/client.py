"""The snapshot stream from the control plane (xDS-like; see DESIGN.md section 2).

One background task dials the control plane, opens ConfigService.StreamSnapshots, announces
the node and the version/hash it holds, and answers every pushed snapshot with an ACK (applied)
or a NACK (refused; the previous policy stays in force). Applying is: verify the hash (in a
thread) and compile in slices on the loop (``SnapshotStore.compile_serving``), swap, write the
disk copy, then ACK. When the stream breaks it
reconnects with jittered exponential backoff; meanwhile the node keeps serving what it has.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

import grpc

from data_plane import __version__, rpc
from data_plane.backoff import backoff_delay
from data_plane.metrics import Metrics
from data_plane.snapshots.store import SnapshotStore
from data_plane.types import RandomSource
from shared.pb import control_pb2, snapshot_pb2

log = logging.getLogger(__name__)


class ConfigClient:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        store: SnapshotStore,
        node: control_pb2.Node,
        metrics: Metrics,
        *,
        backoff: tuple[float, float] = (0.5, 30.0),
        rand: RandomSource | None = None,
    ) -> None:
        self._channel = channel
        self._store = store
        self._node = node
        self._metrics = metrics
        self._backoff = backoff
        self._rand = rand or random.Random()
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Stream until cancelled, reconnecting with backoff after every break. Anything
        other than a broken stream is for the supervisor the app runs this under: it logs,
        counts and restarts the loop (``data_plane.supervisor``)."""
        attempt = 0
        while True:
            try:
                if await self._stream_once():
                    attempt = 0
            except grpc.aio.AioRpcError as exc:
                log.warning("snapshot stream to the control plane broke: %s", exc.code().name)
            finally:
                self.connected.clear()
            delay = backoff_delay(attempt, self._rand, *self._backoff)
            attempt += 1
            await asyncio.sleep(delay)

    def _hello(self) -> control_pb2.SnapshotRequest:
        current = self._store.current
        return control_pb2.SnapshotRequest(
            node=self._node,
            version=current.version if current else 0,
            hash=current.hash if current else "",
        )

    async def _stream_once(self) -> bool:
        """One stream's life. True when it received at least one response (the connection
        worked, so the next reconnect starts from the shortest delay)."""
        call = rpc.stream_snapshots(self._channel)
        received = False
        try:
            await call.write(self._hello())
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing in grpc-stubs
                    log.info("the control plane closed the snapshot stream")
                    return received
                assert isinstance(response, control_pb2.SnapshotResponse)  # not EOF: a message
                received = True
                self.connected.set()
                await call.write(await self._apply(response))
        finally:
            call.cancel()

    async def _apply(self, response: control_pb2.SnapshotResponse) -> control_pb2.SnapshotRequest:
        snapshot = response.snapshot
        current = self._store.current
        if current is None or current.hash != snapshot.hash:
            loop = asyncio.get_running_loop()
            try:
                policy = await self._store.compile_serving(snapshot)
            except ValueError as exc:  # hash mismatch or PolicyError
                return self._nack(response, snapshot, str(exc))
            except Exception as exc:  # a bug, but one snapshot must not stop the stream: refuse it
                log.exception("compiling snapshot version %d failed unexpectedly", snapshot.version)
                return self._nack(response, snapshot, f"{type(exc).__name__}: {exc}")
            self._store.swap(policy)
            self._metrics.snapshot_version.set(policy.version)
            self._metrics.snapshot_created.set(policy.created_unix_ms / 1000)
            try:
                await loop.run_in_executor(None, self._store.persist, snapshot)
            except OSError as exc:  # applied in memory all the same; only the restart copy is stale
                log.error("cannot write the snapshot copy: %s", exc)
            log.info("applied snapshot version %d", policy.version)
        self._metrics.snapshot_updates.labels("ack").inc()
        return control_pb2.SnapshotRequest(
            node=self._node,
            version=snapshot.version,
            hash=snapshot.hash,
            response_nonce=response.nonce,
        )

    def _nack(
        self, response: control_pb2.SnapshotResponse, snapshot: snapshot_pb2.Snapshot, error: str
    ) -> control_pb2.SnapshotRequest:
        log.error("refused snapshot version %d: %s", snapshot.version, error)
        self._metrics.snapshot_updates.labels("nack").inc()
        current = self._store.current
        return control_pb2.SnapshotRequest(
            node=self._node,
            version=current.version if current else 0,
            hash=current.hash if current else "",
            response_nonce=response.nonce,
            error_detail=error,
        )


def make_node(node_id: str, region: str) -> control_pb2.Node:
    return control_pb2.Node(
        id=node_id, region=region, software_version=__version__, boot_id=uuid.uuid4().hex[:16]
    )
