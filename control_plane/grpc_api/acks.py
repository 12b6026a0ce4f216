"""Nodes' ACKs written in bulk, off the streams' path.

A thousand nodes ACK every change within a few hundred milliseconds; written one UPDATE at a
time in Django's one sync thread, they queued behind each other (and usage batches and lease
asks) for seconds, and each stream waited for its own before it could push the next version.
A stream now hands its node's ACK to the recorder and goes on; every ``interval`` the latest
ACK of each node is written, one UPDATE per (version, hash).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Write = Callable[[list[str], int, str], Awaitable[None]]


class AckRecorder:
    def __init__(self, write: Write, interval: float = 0.2) -> None:
        self._write = write
        self._interval = interval
        self._pending: dict[str, tuple[int, str]] = {}
        self._task: asyncio.Task[None] | None = None

    def acked(self, node_id: str, version: int, hash: str) -> None:
        """Note an ACK; a later one of the same node replaces it before it is written."""
        self._pending[node_id] = (version, hash)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        groups: dict[tuple[int, str], list[str]] = defaultdict(list)
        for node_id, held in pending.items():
            groups[held].append(node_id)
        for (version, hash), node_ids in groups.items():
            await self._write(sorted(node_ids), version, hash)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
