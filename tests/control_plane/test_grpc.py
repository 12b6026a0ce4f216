"""The control plane's gRPC services over a real socket (port 0), with the generated client
stubs as a data plane would call them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from control_plane.fleet.models import DataPlaneNode
from control_plane.fleet.services import publish_snapshot
from control_plane.grpc_api.server import build_server
from control_plane.grpc_api.servicers import close_ingest_connections
from control_plane.grpc_api.watcher import SnapshotWatcher
from control_plane.usage.models import UsageRecord
from shared.pb import control_pb2, control_pb2_grpc
from tests.control_plane import factories

pytestmark = pytest.mark.django_db(transaction=True)

NODE = control_pb2.Node(id="dp-test", region="eu", software_version="9.9", boot_id="b1")


@pytest.fixture
async def channel() -> AsyncIterator[tuple[grpc.aio.Channel, SnapshotWatcher]]:
    watcher = SnapshotWatcher(poll_s=0.02)
    server, port = build_server(watcher, "127.0.0.1:0")
    await server.start()
    poller = asyncio.create_task(watcher.run())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch, watcher
    poller.cancel()
    await server.stop(0)
    await close_ingest_connections()  # the ingesting threads' connections too
    await sync_to_async(connections.close_all)()  # the ORM thread's connection, before teardown


def setup_and_publish(slug: str = "acme") -> int:
    factories.stack(slug)
    return publish_snapshot(slug).snapshot.version


async def serving(watcher: SnapshotWatcher, version: int) -> None:
    """Wait until the watcher holds ``version`` (it polls: a node that says hello before
    then is pushed the version before, then this one)."""
    async with asyncio.timeout(15):
        while watcher.latest is None or watcher.latest.version < version:  # noqa: ASYNC110  # the watcher's own pace
            await asyncio.sleep(0.01)


async def read(call: Any) -> control_pb2.SnapshotResponse:
    response = await asyncio.wait_for(call.read(), 15)
    assert isinstance(response, control_pb2.SnapshotResponse)
    return response


async def until(check: Any) -> None:
    """Poll a database condition; fails after 15 s."""
    async with asyncio.timeout(15):
        while not await sync_to_async(check)():  # noqa: ASYNC110  # polling the database is the point
            await asyncio.sleep(0.02)


async def test_push_ack_and_status(channel: tuple[grpc.aio.Channel, SnapshotWatcher]) -> None:
    ch, watcher = channel
    v1 = await sync_to_async(setup_and_publish)()
    await serving(watcher, v1)
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest(node=NODE))
    pushed = await read(call)
    assert pushed.snapshot.version == v1
    assert pushed.nonce
    await call.write(
        control_pb2.SnapshotRequest(
            node=NODE, version=v1, hash=pushed.snapshot.hash, response_nonce=pushed.nonce
        )
    )
    await until(
        lambda: DataPlaneNode.objects.filter(
            node_id="dp-test", applied_version=v1, connected=True
        ).exists()
    )

    await sync_to_async(setup_and_publish)("beta")
    pushed2 = await read(call)
    assert pushed2.HasField("delta"), "the node holds v1: the newer version comes as a delta"
    assert pushed2.delta.version > v1
    assert pushed2.delta.base_version == v1
    assert pushed2.nonce != pushed.nonce
    call.cancel()
    await until(lambda: not DataPlaneNode.objects.get(node_id="dp-test").connected)
    node = await sync_to_async(DataPlaneNode.objects.get)(node_id="dp-test")
    assert node.applied_version == v1, "v2 was never acknowledged"
    assert (node.region, node.software_version) == ("eu", "9.9")


async def test_nothing_is_pushed_to_a_node_that_holds_the_latest(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, watcher = channel
    await sync_to_async(setup_and_publish)()
    await watcher.refresh()
    assert watcher.latest is not None
    held = watcher.latest
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest(node=NODE, version=held.version, hash=held.hash))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call.read(), 0.3)
    call.cancel()


async def test_nack_is_recorded_and_the_refused_snapshot_not_resent(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, watcher = channel
    await serving(watcher, await sync_to_async(setup_and_publish)())
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest(node=NODE))
    pushed = await read(call)
    await call.write(
        control_pb2.SnapshotRequest(
            node=NODE, response_nonce=pushed.nonce, error_detail="cannot open credential"
        )
    )
    await until(
        lambda: DataPlaneNode.objects.get(node_id="dp-test").last_error == "cannot open credential"
    )
    reader = asyncio.ensure_future(call.read())  # (cancelling a read would cancel the call)
    done, _ = await asyncio.wait({reader}, timeout=0.3)
    assert not done, "the refused snapshot is not pushed again"
    await sync_to_async(setup_and_publish)("beta")
    newer = await asyncio.wait_for(reader, 5)
    assert newer.snapshot.version > pushed.snapshot.version, "a newer version is offered"
    call.cancel()


async def test_a_version_published_while_a_push_is_unanswered_follows_its_answer(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, watcher = channel
    v1 = await sync_to_async(setup_and_publish)()
    await serving(watcher, v1)
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest(node=NODE))
    pushed = await read(call)
    v2 = await sync_to_async(setup_and_publish)("beta")
    await serving(watcher, v2)
    reader = asyncio.ensure_future(call.read())  # (cancelling a read would cancel the call)
    done, _ = await asyncio.wait({reader}, timeout=0.3)
    assert not done, "one push at a time: nothing more before the node answers"
    await call.write(
        control_pb2.SnapshotRequest(
            node=NODE, version=v1, hash=pushed.snapshot.hash, response_nonce=pushed.nonce
        )
    )
    newer = await asyncio.wait_for(reader, 5)
    assert (newer.delta.base_version, newer.delta.version) == (v1, v2)
    call.cancel()


async def test_first_message_must_name_the_node(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, _ = channel
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_report_usage_is_idempotent(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, _ = channel
    stub = control_pb2_grpc.UsageServiceStub(ch)  # type: ignore[no-untyped-call]
    batch = control_pb2.UsageBatch(
        batch_id="dp-test:b1:1",
        node_id="dp-test",
        events=[control_pb2.UsageEvent(request_id=f"r{i}", ts_unix_ms=1) for i in range(3)],
    )
    first = await stub.ReportUsage(batch, timeout=5)
    assert (first.accepted, first.duplicate) == (3, False)
    again = await stub.ReportUsage(batch, timeout=5)
    assert again.duplicate
    assert await sync_to_async(UsageRecord.objects.count)() == 3
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ReportUsage(control_pb2.UsageBatch(node_id="x"), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_batch_reports_the_nodes_spool_depth_for_the_fleet_page(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, _ = channel
    await sync_to_async(DataPlaneNode.objects.create)(node_id="dp-test")
    stub = control_pb2_grpc.UsageServiceStub(ch)  # type: ignore[no-untyped-call]
    batch = control_pb2.UsageBatch(batch_id="dp-test:b1:9", node_id="dp-test", spool_depth=7)
    await stub.ReportUsage(batch, timeout=5)
    node = await sync_to_async(DataPlaneNode.objects.get)(node_id="dp-test")
    assert node.spool_depth == 7
    assert node.last_seen is not None
