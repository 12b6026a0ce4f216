"""One watcher per gRPC process: it polls the database for the latest snapshot version (one
tiny query every ``ASC_SNAPSHOT_POLL_S``) and wakes every stream when it changes, so N
connected nodes cost one query, not N. On PostgreSQL it also listens for the publisher's
notices (``announcements.Announcements``): a new version is read as soon as it is committed,
and while listening the poll slows to every ``LISTENING_POLL_S`` (a fallback, and the pace of
a staged rollout's steps). It also keeps the latest snapshot's index and what changed between
the versions it saw (``deltas.DeltaHistory``), so streams can send deltas. The database
decides and stores every version; several gRPC replicas each read it on their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import DatabaseError, close_old_connections, connections

from control_plane.fleet import selectors
from control_plane.fleet.services import load_snapshot
from control_plane.grpc_api.announcements import Announcements
from control_plane.grpc_api.deltas import DeltaHistory, Latest, Step
from control_plane.grpc_api.staging import Held, Staging
from shared.pb import snapshot_pb2
from shared.policy_index import PolicyIndex, policy_of_snapshot

log = logging.getLogger(__name__)

_ENCODED = 4  # encoded snapshots kept: the latest and a staged rollout's versions
LISTENING_POLL_S = 1.0  # the poll's pace (at least) while the publisher's notices are heard


def _fetch_newer(than: int) -> tuple[snapshot_pb2.Snapshot, Latest, bytes] | None:
    """The latest snapshot when it is newer than ``than``, with its hashed index and its
    encoding as stored."""
    close_old_connections()  # a long-lived thread: drop connections the database closed
    row = selectors.latest_snapshot_after(than)
    if row is None:
        return None
    snapshot = load_snapshot(row)
    payload = bytes(row.payload)
    index = PolicyIndex.build(policy_of_snapshot(payload))
    index.hash()  # digests cached: finding what changed skips the equal buckets
    latest = Latest(snapshot.version, snapshot.hash, snapshot.created_unix_ms, index)
    return snapshot, latest, payload


@dataclass(frozen=True)
class _Read:
    """What one trip to the watcher's thread brought back (``SnapshotWatcher._read``)."""

    newer: tuple[snapshot_pb2.Snapshot, Latest, bytes] | None
    step: Step | None  # from the latest held to ``newer``'s
    held: Held | None  # None: the rollouts could not be read


def _announcements() -> Announcements | None:
    """A listener for the publisher's notices on PostgreSQL; None elsewhere (SQLite)."""
    db = connections["default"]
    if db.vendor != "postgresql":
        return None
    params = db.get_connection_params()
    params.pop("cursor_factory", None)  # Django's, for its synchronous connections
    return Announcements(params)


class SnapshotWatcher:
    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self.latest: snapshot_pb2.Snapshot | None = None
        self.deltas = DeltaHistory()
        # The poll's own thread (and database connection): every other database call of the
        # process (node status, usage batches, lease asks) queues in Django's one sync thread,
        # and with a thousand nodes a new version must not wait behind them.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="snapshot-watcher")
        self.staging = Staging()
        # Done when what a stream may owe its node changes; one future for every stream, so
        # a change wakes a thousand streams without a task per stream and wait.
        self._changed: asyncio.Future[None] | None = None
        # Encoded snapshots by (version, hash), each made once: a full push to a thousand
        # nodes encoded the whole snapshot once per stream.
        self._encoded: OrderedDict[tuple[int, str], bytes] = OrderedDict()

    async def refresh(self) -> bool:
        """Load a newer snapshot if there is one; True when ``latest`` changed."""
        current = self.latest.version if self.latest else 0
        try:
            loop = asyncio.get_running_loop()
            read = await loop.run_in_executor(self._reader, self._read, current)
        except DatabaseError as exc:
            log.warning("cannot read snapshots from the database: %s", exc)
            return False
        held, newer = read.held, read.newer
        if newer is None:
            if held is not None and self.staging.apply(held):
                self._wake()
            return False
        snapshot, latest, payload = newer
        self._keep_encoded(snapshot, payload)
        self.deltas.advance(latest, read.step)
        self.latest = snapshot
        if held is not None:
            self.staging.apply(held)  # with the latest, in one step of the loop
        self._wake()
        log.info("serving snapshot v%d", snapshot.version)
        return True

    def encoded(self, snapshot: snapshot_pb2.Snapshot) -> bytes:
        """``snapshot`` encoded: as stored for the latest, encoded once for another version
        (a staged rollout's)."""
        found = self._encoded.get((snapshot.version, snapshot.hash))
        if found is None:
            found = snapshot.SerializeToString()
            self._keep_encoded(snapshot, found)
        return found

    def _keep_encoded(self, snapshot: snapshot_pb2.Snapshot, encoded: bytes) -> None:
        self._encoded[(snapshot.version, snapshot.hash)] = encoded
        while len(self._encoded) > _ENCODED:
            self._encoded.popitem(last=False)

    def for_node(self, node_id: str) -> snapshot_pb2.Snapshot | None:
        """What ``node_id`` is to be pushed: the latest, unless a staged rollout holds it on
        another version."""
        return self.staging.for_node(node_id, self.latest)

    def _read(self, current: int) -> _Read:
        """In the watcher's thread, in one trip (each trip waits for the GIL and then for the
        loop): a snapshot newer than ``current``, what changed since the latest held (both
        indexes hashed, so equal buckets are skipped: slow on a large policy, and safe here
        as it only reads while the loop builds deltas), and the rollouts for the latest this
        process will hold (right after the fetch, on the connection it just checked; see
        grpc_api/staging.py)."""
        newer = _fetch_newer(current)
        step = self.deltas.step_to(newer[1]) if newer is not None else None
        try:
            held: Held | None = self.staging.read(newer[0].version if newer else current)
        except DatabaseError as exc:
            log.warning("cannot read rollouts from the database: %s", exc)
            held = None
        return _Read(newer, step, held)

    def _wake(self) -> None:
        woken, self._changed = self._changed, None
        if woken is not None and not woken.done():
            woken.set_result(None)

    def changed(self) -> asyncio.Future[None]:
        """A future done at the next change (shared by every stream: never cancel it)."""
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed

    async def wait_changed(self) -> None:
        await asyncio.shield(self.changed())

    async def run(self) -> None:
        announcements = _announcements()
        listener = None
        if announcements is not None:
            listener = asyncio.create_task(announcements.run(), name="snapshot-announcements")
        try:
            while True:
                if announcements is None:
                    await self.refresh()
                    await asyncio.sleep(self.poll_s)
                    continue
                announcements.heard.clear()  # a notice from now on reads again
                await self.refresh()
                pause = (
                    max(self.poll_s, LISTENING_POLL_S) if announcements.listening else self.poll_s
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(announcements.heard.wait(), pause)
        finally:  # the listener's and the poll thread's connections go with them
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            self._reader.submit(connections.close_all).result()
            self._reader.shutdown()
