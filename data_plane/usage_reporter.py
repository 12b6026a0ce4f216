"""Usage events from the request path to the control plane, at least once.

``record`` appends to an in-memory queue and returns (never blocks a request). The batcher
task cuts a UsageBatch every ``flush_interval`` or ``batch_max`` events and writes it to the
spool directory atomically BEFORE anything is sent; the sender task reports spooled batches in
order through a ``UsageClient`` and deletes a file only once the control plane acknowledged
it, retrying with backoff otherwise. Batch ids are "<node>:<boot>:<seq>" and travel inside
the spooled file, so a replay after a crash or a restart sends the same ids and the control
plane de-duplicates. ``close`` flushes what is still queued into the spool.
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
from google.protobuf.message import DecodeError

from data_plane.backoff import backoff_delay
from data_plane.files import write_atomic
from data_plane.metrics import Metrics
from data_plane.routing import RandomSource
from shared.pb import control_pb2

log = logging.getLogger(__name__)

SUFFIX = ".batch"


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


class Spool:
    """Batches on disk, one file each, named so that sorting gives the order they were cut
    in (boot start time, then sequence). Blocking: call from an executor thread."""

    def __init__(self, directory: Path, boot_started_ms: int, boot_id: str) -> None:
        self.directory = directory
        self._prefix = f"{boot_started_ms:013d}-{boot_id}-"

    def write(self, batch: control_pb2.UsageBatch, seq: int) -> Path:
        path = self.directory / f"{self._prefix}{seq:010d}{SUFFIX}"
        write_atomic(path, batch.SerializeToString())
        return path

    def pending(self) -> list[Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    @staticmethod
    def read(path: Path) -> control_pb2.UsageBatch:
        batch = control_pb2.UsageBatch()
        batch.ParseFromString(path.read_bytes())
        return batch


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
        backoff: tuple[float, float] = (0.5, 30.0),
        rand: RandomSource | None = None,
    ) -> None:
        self._node_id = node.id
        self._boot_id = node.boot_id
        self._spool = Spool(spool_dir, int(time.time() * 1000), node.boot_id)
        self._client = client
        self._metrics = metrics
        self._flush_interval = flush_interval
        self._batch_max = batch_max
        self._queue_max = queue_max
        self._backoff = backoff
        self._rand = rand or random.Random()
        self._queue: deque[control_pb2.UsageEvent] = deque()
        self._full = asyncio.Event()
        self._spooled = asyncio.Event()
        self._pending: deque[Path] = deque()
        self._seq = 0
        self._tasks: list[asyncio.Task[None]] = []

    def record(self, event: control_pb2.UsageEvent) -> None:
        if len(self._queue) >= self._queue_max:
            self._metrics.usage_events.labels("dropped").inc()
            return
        self._queue.append(event)
        self._metrics.usage_events.labels("queued").inc()
        self._metrics.usage_queue.set(len(self._queue))
        if len(self._queue) >= self._batch_max:
            self._full.set()

    async def start(self) -> None:
        """Pick up batches a previous run left in the spool, then start the tasks."""
        self._pending.extend(await asyncio.to_thread(self._spool.pending))
        self._metrics.usage_spool.set(len(self._pending))
        if self._pending:
            log.info("replaying %d spooled usage batches", len(self._pending))
            self._spooled.set()
        self._tasks = [asyncio.create_task(self._batcher()), asyncio.create_task(self._sender())]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._spool_queue()

    async def _batcher(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._flush_interval):
                    await self._full.wait()
            self._full.clear()
            await self._spool_queue()

    def _cut(self) -> control_pb2.UsageBatch:
        self._seq += 1
        count = min(len(self._queue), self._batch_max)
        events = [self._queue.popleft() for _ in range(count)]
        self._metrics.usage_queue.set(len(self._queue))
        batch_id = f"{self._node_id}:{self._boot_id}:{self._seq}"
        return control_pb2.UsageBatch(batch_id=batch_id, node_id=self._node_id, events=events)

    async def _spool_queue(self) -> None:
        while self._queue:
            batch = self._cut()
            try:
                path = await asyncio.to_thread(self._spool.write, batch, self._seq)
            except OSError as exc:
                log.error("cannot spool usage batch %s, dropping it: %s", batch.batch_id, exc)
                self._metrics.usage_events.labels("dropped").inc(len(batch.events))
                continue
            self._pending.append(path)
            self._metrics.usage_batches.labels("spooled").inc()
            self._metrics.usage_spool.set(len(self._pending))
            self._spooled.set()

    async def _sender(self) -> None:
        if self._client is None:
            return  # no control plane configured: batches stay in the spool
        while True:
            await self._spooled.wait()
            self._spooled.clear()
            while self._pending:
                await self._send_first(self._client)

    async def _send_first(self, client: UsageClient) -> None:
        path = self._pending[0]
        try:
            batch = await asyncio.to_thread(self._spool.read, path)
        except (OSError, DecodeError) as exc:
            log.error("unreadable usage spool file %s, setting it aside: %s", path, exc)
            await asyncio.to_thread(path.replace, path.with_suffix(".bad"))
            self._pending.popleft()
            return
        attempt = 0
        while True:
            try:
                await client.report(batch)
                break
            except (grpc.aio.AioRpcError, ConnectionError, OSError, TimeoutError) as exc:
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
        self._metrics.usage_batches.labels("sent").inc()
        self._metrics.usage_events.labels("sent").inc(len(batch.events))
        self._metrics.usage_spool.set(len(self._pending))


def _reason(exc: BaseException) -> str:
    return exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else repr(exc)
