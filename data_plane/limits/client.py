"""Keeps the node's leases topped up in the background (DESIGN.md section 4).

Every ``interval`` (or at once when kicked by a request that found no lease) it asks the
control plane for the leases the book says need renewing, in one call, and applies the
grants. Requests never call the control plane: at most, a request whose limit has no lease
yet (first use, a new window) waits for the next round, up to ``max_wait`` seconds, and falls
back to the book's rules without a lease after that.

The loop runs under a ``Supervisor``: an unexpected error in a round releases that round's
asks (so the leases are asked for again) and restarts the loop after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

import grpc

from data_plane.limits.leases import LeaseBook
from data_plane.supervisor import Supervisor
from data_plane.tracing import carrier, remote_parent
from shared.pb import control_pb2

log = logging.getLogger(__name__)


class LeaseSource(Protocol):
    async def acquire(self, request: control_pb2.LeaseRequest) -> control_pb2.LeaseResponse: ...


class LeaseClient:
    def __init__(
        self,
        book: LeaseBook,
        source: LeaseSource | None,
        node_id: str,
        *,
        interval: float = 0.5,
        max_wait: float = 1.0,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.book = book
        self._source = source
        self._node_id = node_id
        self._interval = interval
        self.max_wait = max_wait
        self._kick = asyncio.Event()
        self._round = asyncio.Event()
        # The trace context of the first traced request waiting for the next round, if any:
        # that round's ask joins its trace (the control plane's span becomes its child).
        self._waiting_trace: dict[str, str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._supervisor = supervisor or Supervisor()
        book.reachable = source is not None

    def start(self) -> None:
        if self._source is not None:
            self._task = self._supervisor.spawn("lease-client", self._run)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for_round(self) -> None:
        """Kick a round and wait (at most ``max_wait``) until one completes."""
        if self._source is None:
            return
        done = self._round
        if self._waiting_trace is None:
            self._waiting_trace = carrier()
        self._kick.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait):
                await done.wait()

    async def _run(self) -> None:
        assert self._source is not None
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._kick.wait()
            self._kick.clear()
            await self._renew(self._source)
            finished, self._round = self._round, asyncio.Event()
            finished.set()

    async def _renew(self, source: LeaseSource) -> None:
        trace, self._waiting_trace = self._waiting_trace, None
        sent_at = time.monotonic()
        asks = self.book.asks(sent_at, time.time())
        if not asks:
            return
        request = control_pb2.LeaseRequest(node_id=self._node_id, asks=asks)
        try:
            with remote_parent(trace):
                response = await source.acquire(request)
        except (grpc.aio.AioRpcError, ConnectionError, OSError, TimeoutError) as exc:
            if self.book.reachable:
                log.warning("cannot renew leases: %s", exc)
            self.book.reachable = False
            self.book.failed(a.limit_id for a in asks)
            return
        except BaseException:  # unexpected (or cancelled): ask again next round, then raise
            self.book.failed(a.limit_id for a in asks)
            raise
        if not self.book.reachable:
            log.info("leases renewed again")
        self.book.reachable = True
        self.book.apply(response.grants, sent_at)
