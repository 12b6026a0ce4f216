"""The config client against a real gRPC ConfigService on port 0, scripted by the test: it
announces what it holds, ACKs a snapshot only after applying it (in memory and on disk),
NACKs an invalid one with the reason while the previous one stays in force, and resumes with
what it holds after the stream breaks."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from data_plane import rpc
from data_plane.metrics import Metrics
from data_plane.policy.compiled import CompiledPolicy
from data_plane.snapshots.client import ConfigClient, make_node
from data_plane.snapshots.store import SnapshotStore
from data_plane.supervisor import Supervisor
from shared.pb import control_pb2, control_pb2_grpc, snapshot_pb2
from shared.snapshot_parts import part_responses
from tests.data_plane import snapshots
from tests.data_plane.waiting import GUARD_S

END = control_pb2.SnapshotResponse(nonce="__end_stream__")  # tells the server to end a stream


class ScriptedConfigService(control_pb2_grpc.ConfigServiceServicer):
    """Pushes what the test puts in ``outbox`` and hands the test every request it receives.
    Putting ``END`` ends the current stream (as a control-plane restart would)."""

    def __init__(self) -> None:
        self.outbox: asyncio.Queue[control_pb2.SnapshotResponse] = asyncio.Queue()
        self.inbox: asyncio.Queue[control_pb2.SnapshotRequest] = asyncio.Queue()
        self.streams = 0

    async def StreamSnapshots(
        self,
        request_iterator: AsyncIterator[control_pb2.SnapshotRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[control_pb2.SnapshotResponse]:
        self.streams += 1
        reader = asyncio.create_task(self._read(request_iterator))
        try:
            while (response := await self.outbox.get()) is not END:
                yield response
        finally:
            reader.cancel()

    async def _read(self, requests: AsyncIterator[control_pb2.SnapshotRequest]) -> None:
        async for request in requests:
            await self.inbox.put(request)


@dataclass
class Harness:
    service: ScriptedConfigService
    store: SnapshotStore
    client: ConfigClient
    metrics: Metrics
    supervisor: Supervisor

    async def received(self) -> control_pb2.SnapshotRequest:
        return await asyncio.wait_for(self.service.inbox.get(), GUARD_S)

    async def push(
        self, snapshot: snapshot_pb2.Snapshot, nonce: str
    ) -> control_pb2.SnapshotRequest:
        """Push and return the node's answer to it."""
        await self.service.outbox.put(control_pb2.SnapshotResponse(nonce=nonce, snapshot=snapshot))
        answer = await self.received()
        assert answer.response_nonce == nonce
        return answer

    def disk_version(self) -> int | None:
        policy = SnapshotStore(self.store.path, snapshots.keyring()).load_from_disk()
        return policy.version if policy else None


@asynccontextmanager
async def start_harness(store: SnapshotStore) -> AsyncIterator[Harness]:
    service = ScriptedConfigService()
    server = grpc.aio.server()
    control_pb2_grpc.add_ConfigServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = rpc.open_channel(f"127.0.0.1:{port}")
    metrics = Metrics()
    client = ConfigClient(
        channel,
        store,
        make_node("dp-test", "eu"),
        metrics,
        backoff=(0.001, 0.01),
        rand=random.Random(0),
    )
    supervisor = Supervisor(backoff=(0.001, 0.01), rand=random.Random(0))  # as the app runs it
    task = supervisor.spawn("config-client", client.run)
    try:
        yield Harness(service, store, client, metrics, supervisor)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await channel.close(grace=None)
        await server.stop(None)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with start_harness(SnapshotStore(tmp_path / "snapshot.bin", snapshots.keyring())) as h:
        yield h


def good(version: int) -> snapshot_pb2.Snapshot:
    builder = snapshots.two_tenants()
    builder.tenant(f"t-v{version}")  # every version differs, so does its hash
    return builder.snapshot(version)


def dangling(version: int) -> snapshot_pb2.Snapshot:
    builder = snapshots.two_tenants()
    builder.route("r-broken", "t-acme", "broken", [("m-nope", "c-acme")])
    return builder.snapshot(version)


async def test_hello_names_the_node_and_holds_nothing(harness: Harness) -> None:
    hello = await harness.received()
    assert (hello.node.id, hello.node.region) == ("dp-test", "eu")
    assert hello.node.boot_id
    assert hello.node.software_version
    assert (hello.version, hello.hash, hello.response_nonce) == (0, "", "")


async def test_a_snapshot_is_applied_and_persisted_before_the_ack(harness: Harness) -> None:
    await harness.received()
    v1 = good(1)
    ack = await harness.push(v1, "n-1")
    assert (ack.version, ack.hash, ack.error_detail) == (1, v1.hash, "")
    assert ack.node.id == "dp-test"
    current = harness.store.current
    assert current is not None
    assert (current.version, current.hash) == (1, v1.hash)
    assert harness.disk_version() == 1, "the disk copy is written before the ACK"
    assert harness.client.connected.is_set()
    sample = harness.metrics.registry.get_sample_value
    assert sample("asc_dp_snapshot_version") == 1
    assert sample("asc_dp_snapshot_updates_total", {"result": "ack"}) == 1


INVALID = {
    "dangling reference": (dangling, "names unknown model m-nope"),
    "hash mismatch": (
        lambda v: snapshot_pb2.Snapshot(version=v, hash="0" * 64, policy=good(v).policy),
        "hash mismatch",
    ),
    "credential sealed for another fleet": (
        lambda v: snapshots.two_tenants(snapshots.keyring(snapshots.OTHER_SEAL_KEY)).snapshot(v),
        "cannot be opened",
    ),
}


@pytest.mark.parametrize(("make", "reason"), INVALID.values(), ids=INVALID.keys())
async def test_an_invalid_snapshot_is_nacked_and_the_previous_stays(
    harness: Harness, make: Any, reason: str
) -> None:
    await harness.received()
    v1 = good(1)
    await harness.push(v1, "n-1")
    applied = harness.store.current

    nack = await harness.push(make(2), "n-2")
    assert reason in nack.error_detail
    assert (nack.version, nack.hash) == (1, v1.hash), "reports what it still holds"
    assert harness.store.current is applied, "the previous policy stays in force"
    assert harness.disk_version() == 1, "nor is the refused one written to disk"
    sample = harness.metrics.registry.get_sample_value
    assert sample("asc_dp_snapshot_updates_total", {"result": "nack"}) == 1

    v3 = good(3)
    ack = await harness.push(v3, "n-3")
    assert (ack.version, ack.error_detail) == (3, "")
    assert harness.store.current is not None
    assert harness.store.current.version == 3
    assert harness.disk_version() == 3


def parts_of(
    snapshot: snapshot_pb2.Snapshot, nonce: str, size: int
) -> list[control_pb2.SnapshotResponse]:
    encoded = snapshot.SerializeToString(deterministic=True)
    return [
        control_pb2.SnapshotResponse.FromString(response)
        for response in part_responses(nonce, encoded, size)
    ]


async def test_a_snapshot_in_parts_is_applied_and_acked_once_after_the_last_part(
    harness: Harness,
) -> None:
    hello = await harness.received()
    assert hello.accepts_parts
    v1 = good(1)
    parts = parts_of(v1, "n-1", 300)
    assert len(parts) > 3
    for response in parts:
        await harness.service.outbox.put(response)
    ack = await harness.received()
    assert (ack.response_nonce, ack.version, ack.hash, ack.error_detail) == ("n-1", 1, v1.hash, "")
    assert harness.disk_version() == 1
    v2 = good(2)  # then a whole one: the parts left nothing behind
    assert (await harness.push(v2, "n-2")).version == 2
    assert harness.service.inbox.empty(), "one answer per push, none per part"


async def test_parts_that_do_not_make_a_snapshot_are_nacked_once_and_the_previous_stays(
    harness: Harness,
) -> None:
    await harness.received()
    v1 = good(1)
    await harness.push(v1, "n-1")
    applied = harness.store.current
    parts = parts_of(good(2), "n-2", 300)
    for response in [parts[0], *parts[2:]]:  # the second part lost
        await harness.service.outbox.put(response)
    nack = await harness.received()
    assert nack.response_nonce == "n-2"
    assert "after 300 of" in nack.error_detail
    assert (nack.version, nack.hash) == (1, v1.hash)
    assert harness.store.current is applied
    ack = await harness.push(good(3), "n-3")  # the later parts of n-2 were not answered
    assert (ack.version, ack.error_detail) == (3, "")
    assert harness.service.inbox.empty()


async def test_a_nack_on_a_node_with_nothing_reports_nothing(harness: Harness) -> None:
    await harness.received()
    nack = await harness.push(dangling(1), "n-1")
    assert (nack.version, nack.hash) == (0, "")
    assert nack.error_detail
    assert harness.store.current is None
    assert harness.disk_version() is None


async def test_the_same_snapshot_again_is_acked_without_reapplying(harness: Harness) -> None:
    await harness.received()
    v1 = good(1)
    await harness.push(v1, "n-1")
    applied = harness.store.current
    again = await harness.push(v1, "n-2")
    assert (again.version, again.hash, again.error_detail) == (1, v1.hash, "")
    assert harness.store.current is applied


async def test_after_the_stream_ends_the_node_reconnects_with_what_it_holds(
    harness: Harness,
) -> None:
    await harness.received()
    v1 = good(1)
    await harness.push(v1, "n-1")
    await harness.service.outbox.put(END)
    hello = await harness.received()
    assert harness.service.streams == 2
    assert hello.node.id == "dp-test"
    assert (hello.version, hello.hash, hello.response_nonce) == (1, v1.hash, "")
    assert harness.store.current is not None
    assert harness.store.current.version == 1, "kept serving while disconnected"


class SurprisingStore(SnapshotStore):
    """Fails the way no code path documents: compiling version 13, and the first persist of
    version 7."""

    persisted_7 = False

    async def compile_serving(self, snapshot: snapshot_pb2.Snapshot, **how: Any) -> CompiledPolicy:
        if snapshot.version == 13:
            raise RuntimeError("unexpected failure while compiling")
        return await super().compile_serving(snapshot, **how)

    def persist_encoded(self, version: int, payload: bytes | Sequence[bytes | memoryview]) -> None:
        if version == 7 and not self.persisted_7:
            self.persisted_7 = True
            raise RuntimeError("unexpected failure while persisting")
        super().persist_encoded(version, payload)


async def test_an_unexpected_compile_failure_is_a_nack_not_a_dead_client(tmp_path: Path) -> None:
    async with start_harness(SurprisingStore(tmp_path / "s.bin", snapshots.keyring())) as h:
        await h.received()
        await h.push(good(1), "n-1")
        nack = await h.push(good(13), "n-13")
        assert "unexpected failure while compiling" in nack.error_detail
        assert nack.version == 1
        ack = await h.push(good(14), "n-14")
        assert (ack.version, ack.error_detail) == (14, "")


async def test_the_client_outlives_an_unexpected_error_and_reconnects(tmp_path: Path) -> None:
    async with start_harness(SurprisingStore(tmp_path / "s.bin", snapshots.keyring())) as h:
        await h.received()
        v7 = good(7)
        await h.service.outbox.put(control_pb2.SnapshotResponse(nonce="n-7", snapshot=v7))
        hello = await h.received()  # the broken stream is given up; a new one starts
        assert hello.response_nonce == ""
        assert (hello.version, hello.hash) == (7, v7.hash), "applied in memory all the same"
        ack = await h.push(good(8), "n-8")
        assert (ack.version, ack.error_detail) == (8, "")
        assert h.disk_version() == 8
        assert h.supervisor.restarts == {"config-client": 1}, "counted as a restart"
