"""One watcher per gRPC process: it polls the database for the latest snapshot version (one
tiny query every ``ASC_SNAPSHOT_POLL_S``) and wakes every stream when it changes, so N
connected nodes cost one query, not N. Polling the store keeps several gRPC replicas correct
with nothing but Postgres between them."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import sync_to_async
from django.db import DatabaseError, close_old_connections

from control_plane.fleet import selectors
from control_plane.fleet.services import load_snapshot
from control_plane.grpc_api.staging import Staging
from shared.pb import snapshot_pb2

log = logging.getLogger(__name__)


def _fetch_newer(than: int) -> snapshot_pb2.Snapshot | None:
    close_old_connections()  # a long-lived thread: drop connections the database closed
    if selectors.latest_version() <= than:
        return None
    row = selectors.latest_snapshot()
    return load_snapshot(row) if row is not None else None


def _refresh_staging(staging: Staging) -> bool:
    close_old_connections()
    return staging.refresh()


class SnapshotWatcher:
    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self.latest: snapshot_pb2.Snapshot | None = None
        self.staging = Staging()
        self._changed = asyncio.Event()

    async def refresh(self) -> bool:
        """Load a newer snapshot if there is one; True when ``latest`` changed."""
        current = self.latest.version if self.latest else 0
        try:
            newer = await sync_to_async(_fetch_newer)(current)
        except DatabaseError as exc:
            log.warning("cannot read snapshots from the database: %s", exc)
            return False
        await self.refresh_staging()  # after the latest: see control_plane/grpc_api/staging.py
        if newer is None:
            return False
        self.latest = newer
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        log.info("serving snapshot v%d", newer.version)
        return True

    def for_node(self, node_id: str) -> snapshot_pb2.Snapshot | None:
        """What ``node_id`` is to be pushed: the latest, unless a staged rollout holds it on
        another version."""
        return self.staging.for_node(node_id, self.latest)

    async def refresh_staging(self) -> None:
        try:
            changed = await sync_to_async(_refresh_staging)(self.staging)
        except DatabaseError as exc:
            log.warning("cannot read rollouts from the database: %s", exc)
            return
        if changed:
            woken, self._changed = self._changed, asyncio.Event()
            woken.set()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.poll_s)
