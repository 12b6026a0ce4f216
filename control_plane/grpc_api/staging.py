"""What a staged rollout holds each node on, as one gRPC process sees it.

The watcher refreshes it on every poll, right after reading the latest version (a rollout
staging a version is committed before that version is published, so a process that sees the
version sees the rollout): it drives the rollout in flight one step (``rollouts.services.tick``,
serialised between replicas by a row lock), then loads the assignment and the snapshots it
names; it applies both together. Streams ask ``for_node`` what to push; with no rollout
holding the fleet, the latest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import load_snapshot
from control_plane.rollouts import selectors as rollouts
from control_plane.rollouts.services import tick
from shared.pb import snapshot_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    """What the database said: the assignment (None: no rollout holds the fleet) and the
    snapshots it names."""

    assignment: rollouts.Assignment | None
    snapshots: dict[int, snapshot_pb2.Snapshot]


class Staging:
    def __init__(self) -> None:
        self.assignment: rollouts.Assignment | None = None
        self._snapshots: dict[int, snapshot_pb2.Snapshot] = {}

    def read(self, latest: int) -> Held:
        """Database work, in a thread: drive the rollout in flight, then read what it holds
        for a process whose latest snapshot is ``latest``. Nothing changes here until
        ``apply``, which the watcher calls together with that latest snapshot, so a stream
        never sees one without the other."""
        tick()
        found = rollouts.assignment(latest)
        if found is None:
            return Held(None, {})
        wanted = {found.baseline} | ({found.version} if found.version else set())
        snapshots = {v: s for v, s in self._snapshots.items() if v in wanted}
        for row in PolicySnapshot.objects.filter(version__in=wanted - set(snapshots)):
            snapshots[row.version] = load_snapshot(row)
        return Held(found, snapshots)

    def apply(self, held: Held) -> bool:
        """True when the assignment changed."""
        changed = held.assignment != self.assignment
        if changed:
            log.info("rollout assignment: %s", held.assignment)
        self.assignment, self._snapshots = held.assignment, held.snapshots
        return changed

    def for_node(
        self, node_id: str, latest: snapshot_pb2.Snapshot | None
    ) -> snapshot_pb2.Snapshot | None:
        held = self.assignment
        if held is None:
            return latest
        # The baseline when the assigned version cannot be loaded: never a version not staged.
        return self._snapshots.get(held.version_for(node_id), self._snapshots.get(held.baseline))
