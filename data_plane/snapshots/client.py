"""The snapshot stream from the control plane (xDS-like; see DESIGN.md section 2).

One background task dials the control plane, opens ConfigService.StreamSnapshots, announces
the node and the version/hash it holds, and answers every pushed snapshot or delta with an ACK
(applied) or a NACK (refused; the previous policy stays in force). Applying is
``PolicyApplier``'s: index, hash, check and compile a full snapshot (a large one checked by a
process of its own while the loop compiles it in slices), or apply a delta to the policy in
force; swap, write the (full) disk copy, then ACK. When the stream breaks it
reconnects with jittered exponential backoff; meanwhile the node keeps serving what it has.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

import grpc

from data_plane import __version__, rpc
from data_plane.backoff import RECONNECT_S, backoff_delay
from data_plane.metrics import Metrics
from data_plane.snapshots.applier import PolicyApplier, split_snapshot
from data_plane.snapshots.store import SnapshotStore, pause
from data_plane.types import RandomSource
from shared.pb import control_pb2, snapshot_pb2
from shared.policy_index import cut_fields
from shared.snapshot_parts import PartError, Reassembly

log = logging.getLogger(__name__)


class ConfigClient:
    def __init__(
        self,
        channel: grpc.aio.Channel,
        store: SnapshotStore,
        node: control_pb2.Node,
        metrics: Metrics,
        *,
        backoff: tuple[float, float] = RECONNECT_S,
        rand: RandomSource | None = None,
    ) -> None:
        self._channel = channel
        self._store = store
        self._applier = PolicyApplier(store)
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
        try:
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
        finally:
            self._applier.close()

    def _hello(self) -> control_pb2.SnapshotRequest:
        current = self._store.current
        return control_pb2.SnapshotRequest(
            node=self._node,
            version=current.version if current else 0,
            hash=current.hash if current else "",
            accepts_parts=True,
        )

    async def _stream_once(self) -> bool:
        """One stream's life. True when it received at least one response (the connection
        worked, so the next reconnect starts from the shortest delay)."""
        call = rpc.stream_snapshots(self._channel)
        received = False
        try:
            await call.write(self._hello())
            parts = Reassembly()
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing in grpc-stubs
                    log.info("the control plane closed the snapshot stream")
                    return received
                assert isinstance(response, bytes)  # not EOF: an encoded SnapshotResponse
                received = True
                self.connected.set()
                answer = await self._received(response, parts)
                if answer is not None:
                    await call.write(answer)
                else:  # a part: the next is read once the requests under way have run
                    await pause()
        finally:
            call.cancel()

    async def _received(
        self, encoded: bytes, parts: Reassembly
    ) -> control_pb2.SnapshotRequest | None:
        """The answer to a response: the ACK or NACK of a push, or None for a part of a full
        snapshot that is not its last (``shared.snapshot_parts``). The response is decoded here
        but for a full snapshot, which stays encoded: as a view into ``encoded`` (a 26 MiB
        policy is not copied on the loop), or into the buffer its parts were copied to."""
        view = memoryview(encoded)
        # Field 2, a full snapshot in one message, and field 4, a part of one, stay views.
        rest, fields = cut_fields(view, (2, 4))
        response = control_pb2.SnapshotResponse.FromString(rest)
        full = fields.get(2, view[0:0])
        if 4 in fields:
            part = control_pb2.SnapshotPart.FromString(fields[4])  # type: ignore[arg-type]
            if part.offset == 0:
                self._applier.expect_full(part.total_size)
            try:
                whole = parts.add(response.nonce, part)
            except PartError as exc:
                return self._nack(response, 0, str(exc))
            if whole is None:
                return None
            full = whole
        return await self._apply(response, full)

    async def _apply(
        self, response: control_pb2.SnapshotResponse, full: memoryview
    ) -> control_pb2.SnapshotRequest:
        """Apply a full snapshot (``full``, encoded) or the response's delta
        (``PolicyApplier``); the ACK, or a NACK keeping what the node held."""
        is_delta = response.HasField("delta")
        snapshot, policy = split_snapshot(full) if not is_delta else (None, full)
        body: snapshot_pb2.Snapshot | snapshot_pb2.SnapshotDelta = snapshot or response.delta
        current = self._store.current
        if current is None or current.hash != body.hash:
            try:
                if snapshot is None:
                    compiled = await self._applier.delta(response.delta)
                else:
                    compiled = await self._applier.full_encoded(snapshot, policy)
            except ValueError as exc:  # another base, hash mismatch, inconsistent, PolicyError
                return self._nack(response, body.version, str(exc))
            except Exception as exc:  # a bug, but one snapshot must not stop the stream: refuse it
                log.exception("applying snapshot version %d failed unexpectedly", body.version)
                return self._nack(response, body.version, f"{type(exc).__name__}: {exc}")
            self._metrics.snapshot_version.set(compiled.version)
            self._metrics.snapshot_created.set(compiled.created_unix_ms / 1000)
            try:
                await self._applier.persist()
            except OSError as exc:  # applied in memory all the same; only the restart copy is stale
                log.error("cannot write the snapshot copy: %s", exc)
            log.info(
                "applied %s version %d", "a delta to" if is_delta else "snapshot", body.version
            )
        self._metrics.snapshot_updates.labels("ack").inc()
        return control_pb2.SnapshotRequest(
            node=self._node,
            version=body.version,
            hash=body.hash,
            response_nonce=response.nonce,
        )

    def _nack(
        self, response: control_pb2.SnapshotResponse, version: int, error: str
    ) -> control_pb2.SnapshotRequest:
        log.error("refused snapshot version %d: %s", version, error)
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
