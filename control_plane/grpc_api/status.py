"""What nodes' usage batches say about them, written at most once per ``interval`` per node.

Every usage batch says its node is alive (``last_seen``, with its spool depth) and carries its
health signals by snapshot version, for a staged rollout (``rollouts.services.record_health``).
Written per batch they were an UPDATE and a rollout lookup in Django's one sync thread for
every batch, a few a second from each busy node. Now a node's batch is written at once when
nothing of that node was written in the last ``interval`` (its first batch is on the fleet
page when the batch is answered); a batch closer behind is noted, and what a node's noted
batches said is written when its interval is over: its latest spool depth, and its health
signals summed by version (the rollout reads sums: the sum of sums is the same). ``close``
writes what is noted when the process stops; a process that dies loses at most one
interval of status (the batches themselves are stored before they are answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from shared.pb import control_pb2

# The counters of ``asc.v1.VersionHealth``: every field but ``version``.
_COUNTERS = tuple(
    f.name for f in control_pb2.VersionHealth.DESCRIPTOR.fields if f.name != "version"
)

Health = dict[str, list[control_pb2.VersionHealth]]  # node -> its signals, one per version
Write = Callable[[dict[str, int], Health], Awaitable[None]]


class NodeStatus:
    def __init__(
        self, write: Write, interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``write(seen, health)``: ``seen`` maps each node to its latest spool depth."""
        self._write = write
        self._interval = interval
        self._clock = clock
        self._seen: dict[str, int] = {}  # noted, not written yet
        self._health: dict[str, dict[int, control_pb2.VersionHealth]] = {}
        self._written: dict[str, float] = {}  # when each node was last written
        self._task: asyncio.Task[None] | None = None

    async def batch(
        self, node_id: str, spool_depth: int, health: Iterable[control_pb2.VersionHealth]
    ) -> None:
        """A usage batch of ``node_id`` (``health``: its signals, none for a replay)."""
        self._note(node_id, spool_depth, health)
        now = self._clock()
        if now - self._written.get(node_id, -math.inf) >= self._interval:
            await self._write_nodes([node_id], now)
        elif self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _note(
        self, node_id: str, spool_depth: int, health: Iterable[control_pb2.VersionHealth]
    ) -> None:
        self._seen[node_id] = spool_depth
        for signal in health:
            by_version = self._health.setdefault(node_id, {})
            summed = by_version.get(signal.version)
            if summed is None:
                by_version[signal.version] = control_pb2.VersionHealth(
                    version=signal.version, **{n: getattr(signal, n) for n in _COUNTERS}
                )
                continue
            for name in _COUNTERS:
                setattr(summed, name, getattr(summed, name) + getattr(signal, name))

    async def _write_nodes(self, node_ids: list[str], now: float) -> None:
        seen = {n: self._seen.pop(n) for n in node_ids}
        health = {n: list(self._health.pop(n).values()) for n in node_ids if n in self._health}
        for node_id in node_ids:
            self._written[node_id] = now
        await self._write(seen, health)

    async def _run(self) -> None:
        while self._seen:
            await asyncio.sleep(self._interval / 2)
            await self.flush()

    async def flush(self, *, everything: bool = False) -> None:
        """Write the nodes whose interval is over (``everything``: every node noted)."""
        now = self._clock()
        self._written = {n: t for n, t in self._written.items() if now - t < self._interval}
        due = [n for n in self._seen if everything or n not in self._written]
        if due:
            await self._write_nodes(due, now)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush(everything=True)
