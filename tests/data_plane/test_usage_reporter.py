"""The usage reporter delivers at least once: every batch is on disk before it is sent, leaves
the spool only once acknowledged, is retried while the control plane fails and replayed by the
next process on the same spool; batch ids never repeat across boots, so the control plane's
de-duplication makes delivery exactly-once in effect."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from data_plane import rpc
from data_plane.metrics import Metrics
from data_plane.usage.reporter import SUFFIX, MemoryUsageClient, Spool, UsageClient, UsageReporter
from shared.pb import control_pb2, control_pb2_grpc
from tests.data_plane.waiting import eventually


def node(boot_id: str = "boot-a") -> control_pb2.Node:
    return control_pb2.Node(id="dp-1", region="eu", software_version="t", boot_id=boot_id)


def event(i: int) -> control_pb2.UsageEvent:
    return control_pb2.UsageEvent(request_id=f"req-{i}", ts_unix_ms=1_000 + i, tenant_id="t-a")


def make_reporter(
    spool: Path,
    client: UsageClient | None,
    *,
    boot_id: str = "boot-a",
    batch_max: int = 2,
    flush_interval: float = 3600.0,
    metrics: Metrics | None = None,
    **kwargs: Any,
) -> UsageReporter:
    """A reporter that cuts batches by size only (unless told otherwise) and retries fast."""
    return UsageReporter(
        node(boot_id),
        spool,
        client,
        metrics or Metrics(),
        flush_interval=flush_interval,
        batch_max=batch_max,
        backoff=(0.001, 0.01),
        rand=random.Random(0),
        **kwargs,
    )


@asynccontextmanager
async def running(reporter: UsageReporter) -> AsyncIterator[UsageReporter]:
    await reporter.start()
    try:
        yield reporter
    finally:
        await reporter.close()


def spooled(spool: Path) -> list[control_pb2.UsageBatch]:
    return [Spool.read(path) for path in sorted(spool.glob(f"*{SUFFIX}"))]


def batch_names(spool: Path) -> list[str]:
    """The spooled batches' names: what a wait polls (reading them would race the reporter
    removing one once it is acknowledged)."""
    return sorted(path.name for path in spool.glob(f"*{SUFFIX}"))


def file_names(spool: Path) -> list[str]:
    return sorted(path.name for path in spool.iterdir())


def request_ids(batches: list[control_pb2.UsageBatch]) -> list[str]:
    return [e.request_id for batch in batches for e in batch.events]


class GatedClient:
    """Holds every report until ``gate`` is set; records what the spool held at each call."""

    def __init__(self, spool: Path) -> None:
        self.inner = MemoryUsageClient()
        self.gate = asyncio.Event()
        self.calls: list[str] = []
        self.spooled_at_call: list[list[str]] = []
        self._spool = spool

    async def report(self, batch: control_pb2.UsageBatch) -> control_pb2.UsageAck:
        self.calls.append(batch.batch_id)
        self.spooled_at_call.append([b.batch_id for b in spooled(self._spool)])
        await self.gate.wait()
        return await self.inner.report(batch)


class LostAckClient(MemoryUsageClient):
    """Stores the first batch, then fails as if the acknowledgement was lost on the way."""

    async def report(self, batch: control_pb2.UsageBatch) -> control_pb2.UsageAck:
        ack = await super().report(batch)
        if self.calls == 1:
            raise ConnectionError("connection reset before the ack arrived")
        return ack


class SurprisingClient(MemoryUsageClient):
    """Fails its first call with an exception no transport is documented to raise."""

    async def report(self, batch: control_pb2.UsageBatch) -> control_pb2.UsageAck:
        if self.calls == 0:
            self.calls += 1
            raise RuntimeError("a bug or an undocumented failure in the client")
        return await super().report(batch)


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "usage-spool"


async def test_a_batch_is_on_disk_before_it_is_sent_and_leaves_only_after_the_ack(
    spool: Path,
) -> None:
    client = GatedClient(spool)
    async with running(make_reporter(spool, client)) as reporter:
        reporter.record(event(0))
        reporter.record(event(1))
        await eventually(lambda: client.calls, "the batch is reported")
        assert client.spooled_at_call == [["dp-1:boot-a:1"]], "spooled before it was sent"
        assert request_ids(spooled(spool)) == ["req-0", "req-1"]
        assert not client.inner.batches
        client.gate.set()
        await eventually(lambda: not batch_names(spool), "the acknowledged batch leaves the spool")
    assert list(client.inner.batches) == ["dp-1:boot-a:1"]
    assert [e.request_id for e in client.inner.events] == ["req-0", "req-1"]
    assert spooled(spool) == []


async def test_a_failing_control_plane_keeps_batches_until_it_recovers(spool: Path) -> None:
    client = MemoryUsageClient()
    client.down = True
    metrics = Metrics()
    async with running(make_reporter(spool, client, metrics=metrics)) as reporter:
        for i in range(4):
            reporter.record(event(i))
        await eventually(lambda: client.calls >= 5, "the reporter keeps retrying")
        assert not client.batches
        assert [b.batch_id for b in spooled(spool)] == ["dp-1:boot-a:1", "dp-1:boot-a:2"]
        client.down = False
        await eventually(lambda: len(client.batches) == 2, "both batches are delivered")
        await eventually(lambda: not batch_names(spool), "the spool is empty")
        sample = metrics.registry.get_sample_value
        # Counted just after the spool file is removed: stopping the reporter before then
        # cuts its bookkeeping short (the batch itself is delivered either way).
        await eventually(
            lambda: sample("asc_dp_usage_batches_total", {"fate": "sent"}) == 2,
            "both batches counted as sent",
        )
    assert list(client.batches) == ["dp-1:boot-a:1", "dp-1:boot-a:2"], "in the order cut"
    assert [e.request_id for e in client.events] == ["req-0", "req-1", "req-2", "req-3"]
    assert (sample("asc_dp_usage_batches_total", {"fate": "retried"}) or 0) >= 4
    assert sample("asc_dp_usage_spool_depth") == 0


async def test_a_lost_ack_resends_the_same_batch_id_and_it_is_stored_once(spool: Path) -> None:
    client = LostAckClient()
    async with running(make_reporter(spool, client)) as reporter:
        reporter.record(event(0))
        reporter.record(event(1))
        await eventually(
            lambda: client.calls == 2 and not batch_names(spool), "the resend is acked"
        )
    assert list(client.batches) == ["dp-1:boot-a:1"]
    assert [e.request_id for e in client.events] == ["req-0", "req-1"]


async def test_an_unexpected_client_error_is_retried_not_fatal(spool: Path) -> None:
    client = SurprisingClient()
    reporter = make_reporter(spool, client)
    async with running(reporter):
        reporter.record(event(0))
        reporter.record(event(1))
        await eventually(lambda: client.batches, "the batch is delivered on the retry")
        reporter.record(event(2))
        reporter.record(event(3))
        # Delivered and out of the spool: a close between the two would rightly keep the
        # batch spooled, to be sent again (and stored once) after a restart.
        await eventually(
            lambda: len(client.batches) == 2 and not batch_names(spool), "the sender is still alive"
        )
        reporter.record(event(4))
    assert [e.request_id for e in client.events] == [f"req-{i}" for i in range(4)]
    assert request_ids(spooled(spool)) == ["req-4"], "close flushed the queue"


async def test_close_spools_what_is_still_queued(spool: Path) -> None:
    reporter = make_reporter(spool, None, batch_max=10)
    async with running(reporter):
        for i in range(5):
            reporter.record(event(i))
        assert spooled(spool) == [], "below batch_max and before the interval: still queued"
    (batch,) = spooled(spool)
    assert batch.batch_id == "dp-1:boot-a:1"
    assert batch.node_id == "dp-1"
    assert request_ids([batch]) == [f"req-{i}" for i in range(5)]


async def test_the_flush_interval_cuts_a_batch_below_batch_max(spool: Path) -> None:
    client = MemoryUsageClient()
    async with running(make_reporter(spool, client, batch_max=100, flush_interval=0.02)) as rep:
        rep.record(event(0))
        await eventually(lambda: client.batches, "the interval flushes the lone event")
    assert [e.request_id for e in client.events] == ["req-0"]


async def test_a_restart_replays_pending_batches_and_never_reuses_a_batch_id(
    spool: Path,
) -> None:
    first = make_reporter(spool, None, boot_id="boot-a")  # control plane unreachable
    async with running(first):
        for i in range(3):
            first.record(event(i))
        await eventually(lambda: batch_names(spool), "the full batch is spooled")
    left = [b.batch_id for b in spooled(spool)]
    assert left == ["dp-1:boot-a:1", "dp-1:boot-a:2"], "the queue's rest flushed at close"

    client = MemoryUsageClient()
    second = make_reporter(spool, client, boot_id="boot-b")
    async with running(second):
        await eventually(lambda: len(client.batches) == 2, "the spooled batches are replayed")
        second.record(event(3))
        second.record(event(4))
        await eventually(lambda: len(client.batches) == 3, "the new boot's batch is sent")
    assert list(client.batches) == ["dp-1:boot-a:1", "dp-1:boot-a:2", "dp-1:boot-b:1"]
    assert client.calls == 3, "each batch sent once"
    assert [e.request_id for e in client.events] == [f"req-{i}" for i in range(5)]
    assert spooled(spool) == []


async def test_a_batch_in_flight_at_shutdown_is_replayed_by_the_next_process(
    spool: Path,
) -> None:
    stuck = GatedClient(spool)  # never answers
    async with running(make_reporter(spool, stuck, boot_id="boot-a")) as reporter:
        reporter.record(event(0))
        reporter.record(event(1))
        await eventually(lambda: stuck.calls, "the batch is in flight")
    assert [b.batch_id for b in spooled(spool)] == ["dp-1:boot-a:1"], "not acked: kept"

    client = MemoryUsageClient()
    async with running(make_reporter(spool, client, boot_id="boot-b")):
        await eventually(lambda: client.batches, "the batch is replayed")
    assert list(client.batches) == ["dp-1:boot-a:1"]
    assert [e.request_id for e in client.events] == ["req-0", "req-1"]


@pytest.fixture
def bad_file(spool: Path) -> Path:
    """A spool file from an earlier boot (sorted first) that is not a UsageBatch."""
    spool.mkdir(parents=True)
    bad = spool / f"0000000000001-old-0000000001{SUFFIX}"
    bad.write_bytes(b"\xff\xff\xff not a batch")
    return bad


async def test_an_unreadable_spool_file_is_set_aside_and_does_not_block_the_rest(
    spool: Path, bad_file: Path
) -> None:
    client = MemoryUsageClient()
    async with running(make_reporter(spool, client)) as reporter:
        reporter.record(event(0))
        reporter.record(event(1))
        await eventually(lambda: client.batches, "the good batch is delivered")
    assert list(client.batches) == ["dp-1:boot-a:1"]
    assert file_names(spool) == ["quarantine"]
    assert file_names(spool / "quarantine") == [bad_file.name], "kept for a human to see"


async def test_a_full_queue_drops_and_counts(spool: Path) -> None:
    metrics = Metrics()
    reporter = make_reporter(spool, None, batch_max=100, queue_max=3, metrics=metrics)
    for i in range(5):
        reporter.record(event(i))  # record never blocks, even before start
    sample = metrics.registry.get_sample_value
    assert sample("asc_dp_usage_events_total", {"fate": "queued"}) == 3
    assert sample("asc_dp_usage_events_total", {"fate": "dropped"}) == 2
    async with running(reporter):
        pass
    assert request_ids(spooled(spool)) == ["req-0", "req-1", "req-2"]


class FlakyUsageService(control_pb2_grpc.UsageServiceServicer):
    """A real gRPC UsageService that is unavailable for its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.batches: dict[str, control_pb2.UsageBatch] = {}
        self.calls = 0

    async def ReportUsage(
        self, request: control_pb2.UsageBatch, context: grpc.aio.ServicerContext[Any, Any]
    ) -> control_pb2.UsageAck:
        self.calls += 1
        if self.calls <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "starting up")
        duplicate = request.batch_id in self.batches
        self.batches.setdefault(request.batch_id, request)
        return control_pb2.UsageAck(
            batch_id=request.batch_id,
            accepted=0 if duplicate else len(request.events),
            duplicate=duplicate,
        )


async def test_the_grpc_client_retries_an_unavailable_control_plane(spool: Path) -> None:
    service = FlakyUsageService(failures=2)
    server = grpc.aio.server()
    control_pb2_grpc.add_UsageServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = rpc.open_channel(f"127.0.0.1:{port}")
    try:
        client = rpc.GrpcUsageClient(channel, timeout_s=5)
        async with running(make_reporter(spool, client)) as reporter:
            reporter.record(event(0))
            reporter.record(event(1))
            await eventually(
                lambda: service.batches and not batch_names(spool), "delivered after two refusals"
            )
    finally:
        await channel.close(grace=None)
        await server.stop(None)
    assert service.calls == 3
    assert list(service.batches) == ["dp-1:boot-a:1"]
    assert [e.request_id for e in service.batches["dp-1:boot-a:1"].events] == ["req-0", "req-1"]


async def test_each_batch_sent_tells_the_spool_depth(spool: Path) -> None:
    """The control plane shows each node's backlog: a batch carries how many wait."""
    client = MemoryUsageClient()
    client.down = True
    metrics = Metrics()
    depth = metrics.registry.get_sample_value
    async with running(make_reporter(spool, client, metrics=metrics)) as reporter:
        for i in range(6):
            reporter.record(event(i))
        # The reporter's count, not the files: a file is on disk a moment before it counts.
        await eventually(lambda: depth("asc_dp_usage_spool_depth") == 3, "three batches spooled")
        client.down = False
        await eventually(lambda: len(client.batches) == 3, "three batches delivered")
    assert [b.spool_depth for b in client.batches.values()] == [3, 2, 1]
