"""Usage events from the request path to the control plane, at least once.

``record`` appends to an in-memory queue and returns (never blocks a request). The batcher
task cuts a UsageBatch every ``flush_interval`` or ``batch_max`` events and writes it to the
spool directory atomically BEFORE anything is sent; the sender task reports spooled batches in
order through a ``UsageClient`` and deletes a file only once the control plane acknowledged
it, retrying with backoff otherwise. Batch ids are "<node>:<boot>:<seq>" and travel inside
the spooled file, so a replay after a crash or a restart sends the same ids and the control
plane de-duplicates. ``close`` flushes what is still queued into the spool.

Each event may carry its audit record, sealed into this boot's hash chain when it is queued,
so chain order is queue, spool and send order.

The spool is bounded (``spool_max_bytes``): past 80 % a warning is logged, and when it is full
batches stay in the memory queue (bounded by ``queue_max``) until the control plane takes some;
only then are events dropped, counted and logged. Both depths are metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from pathlib import Path
from typing import Protocol

import grpc

from data_plane.backoff import backoff_delay
from data_plane.metrics import Metrics
from data_plane.supervisor import Supervisor
from data_plane.types import RandomSource
from data_plane.usage.audit import AuditChain
from data_plane.usage.spool import SUFFIX, CorruptSpoolFile, Spool

__all__ = ["SUFFIX", "MemoryUsageClient", "Spool", "UsageClient", "UsageReporter"]
from data_plane.usage.record import version_health
from shared.pb import control_pb2

log = logging.getLogger(__name__)

# A usage event waiting in memory, with its audit record (sealed) when it has one.
Queued = tuple[control_pb2.UsageEvent, control_pb2.AuditRecord | None]


class UsageClient(Protocol):
    async def report(self, batch: control_pb2.UsageBatch) -> control_pb2.UsageAck: ...


class MemoryUsageClient:
    """An in-memory control plane: keeps batches by id (de-duplicating like the real one);
    ``down = True`` makes every call fail."""

    def __init__(self) -> None:
        self.batches: dict[str, control_pb2.UsageBatch] = {}
        self.calls = 0
        self.down = False

    async def report(self, batch: control_pb2.UsageBatch) -> control_pb2.UsageAck:
        self.calls += 1
        if self.down:
            raise ConnectionError("control plane down")
        duplicate = batch.batch_id in self.batches
        self.batches.setdefault(batch.batch_id, batch)
        accepted = 0 if duplicate else len(batch.events)
        return control_pb2.UsageAck(batch_id=batch.batch_id, accepted=accepted, duplicate=duplicate)

    @property
    def events(self) -> list[control_pb2.UsageEvent]:
        return [event for batch in self.batches.values() for event in batch.events]


class UsageReporter:
    def __init__(
        self,
        node: control_pb2.Node,
        spool_dir: Path,
        client: UsageClient | None,
        metrics: Metrics,
        *,
        flush_interval: float = 1.0,
        batch_max: int = 500,
        queue_max: int = 100_000,
        spool_max_bytes: int = 512 * 1024 * 1024,
        backoff: tuple[float, float] = (0.5, 30.0),
        rand: RandomSource | None = None,
        supervisor: Supervisor | None = None,
        commit_window: float = 0.002,
    ) -> None:
        self._node_id = node.id
        self._boot_id = node.boot_id
        self._spool = Spool(spool_dir, int(time.time() * 1000), node.boot_id)
        self._client = client
        self._metrics = metrics
        self._queued = metrics.usage_events.labels("queued")  # bound once: per event below
        self._flush_interval = flush_interval
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._spool_max = spool_max_bytes
        self._spool_bytes = 0
        self._spool_warned = False
        self._chain = AuditChain(f"{node.id}:{node.boot_id}")
        self._backoff = backoff
        self._rand = rand or random.Random()
        self._queue: deque[Queued] = deque()
        self._full = asyncio.Event()
        self._spooled = asyncio.Event()
        self._pending: deque[tuple[Path, int]] = deque()
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._supervisor = supervisor or Supervisor(backoff=backoff, rand=self._rand)
        # Durable records: their request id -> resolved True once on disk, False if dropped.
        self._waiters: dict[str, asyncio.Future[bool]] = {}
        self._durable_due = False
        self._commit_window = commit_window

    def record(
        self,
        event: control_pb2.UsageEvent,
        audit: control_pb2.AuditRecord | None = None,
        *,
        durable: bool = False,
    ) -> asyncio.Future[bool] | None:
        """Queue ``event`` (and seal ``audit`` into the chain); never blocks. ``durable``:
        also return a future resolved True once the event is in the spool on disk (fsynced;
        batches are cut within ``commit_window`` of the first durable event, a group commit)
        or False if it cannot be kept (queue or spool full, write failed)."""
        waiter = asyncio.get_running_loop().create_future() if durable else None
        if len(self._queue) >= self._queue_max:
            self._metrics.usage_events.labels("dropped").inc()
            log.error("usage queue full (%d events): event %s dropped", len(self._queue),
                      event.request_id)  # fmt: skip
            if waiter is not None:
                waiter.set_result(False)
            return waiter
        self._queue.append((event, self._chain.seal(audit) if audit is not None else None))
        self._queued.inc()
        self._metrics.usage_queue.set(len(self._queue))
        if waiter is not None:
            self._waiters[event.request_id] = waiter
            self._durable_due = True
            self._full.set()
        elif len(self._queue) >= self._batch_max:
            self._full.set()
        return waiter

    async def start(self) -> None:
        """Pick up batches a previous run left in the spool, then start the tasks."""
        paths = await asyncio.to_thread(self._spool.pending)
        paths, quarantined = await asyncio.to_thread(self._spool.readable, paths)
        for path, why in quarantined:
            log.error("corrupt usage spool file quarantined as %s (%s); replaying the rest",
                      path, why)  # fmt: skip
            self._metrics.usage_spool_quarantined.inc()
        sizes = await asyncio.to_thread(Spool.sizes, paths)
        self._pending.extend(zip(paths, sizes, strict=True))
        self._spool_bytes = sum(sizes)
        self._metrics.usage_spool.set(len(self._pending))
        self._metrics.usage_spool_bytes.set(self._spool_bytes)
        if self._pending:
            log.info("replaying %d spooled usage batches", len(self._pending))
            self._spooled.set()
        self._tasks = [
            self._supervisor.spawn("usage-batcher", self._batcher),
            self._supervisor.spawn("usage-sender", self._sender),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a task that died must not also lose the queue flushed below
                log.exception("usage reporter task %s had failed", task.get_name())
        self._tasks = []
        await self._spool_queue()
        self._settle(list(self._queue), kept=False)  # what the full spool could not take

    async def _batcher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._full.wait()
            self._full.clear()
            if self._durable_due:  # group commit: the durable events of the next few ms too
                self._durable_due = False
                await asyncio.sleep(self._commit_window)
            await self._spool_queue()

    def _cut(self) -> tuple[control_pb2.UsageBatch, list[Queued]]:
        self._seq += 1
        count = min(len(self._queue), self._batch_max)
        items = [self._queue.popleft() for _ in range(count)]
        self._metrics.usage_queue.set(len(self._queue))
        batch_id = f"{self._node_id}:{self._boot_id}:{self._seq}"
        batch = control_pb2.UsageBatch(
            batch_id=batch_id,
            node_id=self._node_id,
            events=[event for event, _ in items],
            audit=[audit for _, audit in items if audit is not None],
            health=version_health(event for event, _ in items),
        )
        return batch, items

    async def _spool_queue(self) -> None:
        while self._queue and self._spool_has_room():
            batch, items = self._cut()
            # Shielded: a write that started finishes even if this task is cancelled (close),
            # so a batch is never both on disk and back in the queue, nor neither.
            write = asyncio.ensure_future(asyncio.to_thread(self._spool.write, batch, self._seq))
            try:
                path, size = await asyncio.shield(write)
            except OSError as exc:
                log.error("cannot spool usage batch %s, dropping it: %s", batch.batch_id, exc)
                self._metrics.usage_events.labels("dropped").inc(len(batch.events))
                self._metrics.usage_spool_write_errors.inc()
                self._settle(items, kept=False)
                continue
            except asyncio.CancelledError:
                await asyncio.wait({write})
                if write.exception() is None:
                    self._spooled_one(*write.result())
                    self._settle(items, kept=True)
                else:
                    self._requeue(items)
                raise
            except Exception:  # unexpected: the events go back to the queue, the task restarts
                self._requeue(items)
                raise
            self._spooled_one(path, size)
            self._settle(items, kept=True)
        if self._waiters and not self._spool_has_room():
            self._settle(list(self._queue), kept=False)  # durable tenants fail closed

    def _settle(self, items: list[Queued], *, kept: bool) -> None:
        """Resolve the durable waiters of ``items``: on disk, or not kept."""
        if not self._waiters:
            return
        for event, _ in items:
            waiter = self._waiters.pop(event.request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(kept)

    def _requeue(self, items: list[Queued]) -> None:
        """Events of a batch that was cut but not spooled, back at the head of the queue (in
        chain order; the batch id is not reused)."""
        self._queue.extendleft(reversed(items))
        self._metrics.usage_queue.set(len(self._queue))

    def _spooled_one(self, path: Path, size: int) -> None:
        self._pending.append((path, size))
        self._spool_bytes += size
        self._metrics.usage_batches.labels("spooled").inc()
        self._metrics.usage_spool.set(len(self._pending))
        self._metrics.usage_spool_bytes.set(self._spool_bytes)
        self._spooled.set()

    def _spool_has_room(self) -> bool:
        """False when the spool is full; logs once when it passes 80 % (and when it is full)."""
        used = self._spool_bytes / self._spool_max if self._spool_max else 0.0
        if used >= 0.8 and not self._spool_warned:
            self._spool_warned = True
            log.warning(
                "usage spool %.0f%% full (%d of %d bytes, %d batches): is the control plane "
                "reachable?", used * 100, self._spool_bytes, self._spool_max, len(self._pending),
            )  # fmt: skip
        elif used < 0.5:
            self._spool_warned = False
        return used < 1.0

    async def _sender(self) -> None:
        if self._client is None:
            return  # no control plane configured: batches stay in the spool
        while True:  # drains first: a sender restarted after a failure finds batches pending
            while self._pending:
                await self._send_first(self._client)
            await self._spooled.wait()
            self._spooled.clear()

    async def _send_first(self, client: UsageClient) -> None:
        path, size = self._pending[0]
        try:
            batch = await asyncio.to_thread(self._spool.read, path)
        except (OSError, CorruptSpoolFile) as exc:
            log.error("unreadable usage spool file %s, quarantined: %s", path, exc)
            await asyncio.to_thread(self._spool.quarantine, path)
            self._metrics.usage_spool_quarantined.inc()
            self._pending.popleft()
            self._spool_bytes -= size
            return
        attempt = 0
        while True:
            batch.spool_depth = len(self._pending)  # as of this attempt
            try:
                await client.report(batch)
                break
            except Exception as exc:  # retry anything: a dead sender would stop all reporting
                self._metrics.usage_batches.labels("retried").inc()
                delay = backoff_delay(attempt, self._rand, *self._backoff)
                log.warning(
                    "usage batch %s not delivered (%s); retry in %.1f s",
                    batch.batch_id,
                    _reason(exc),
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)
        await asyncio.to_thread(path.unlink, missing_ok=True)
        self._pending.popleft()
        self._spool_bytes -= size
        self._metrics.usage_batches.labels("sent").inc()
        self._metrics.usage_events.labels("sent").inc(len(batch.events))
        self._metrics.usage_spool.set(len(self._pending))
        self._metrics.usage_spool_bytes.set(self._spool_bytes)
        if self._queue:
            self._full.set()  # room in the spool again: spool what waited in memory


def _reason(exc: BaseException) -> str:
    return exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
