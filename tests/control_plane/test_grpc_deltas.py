"""Deltas over the control plane's real ConfigService (ADR 0006): a node that ACKed a version
gets the next one as a delta (a created key travels alone, not the whole policy); a NACKed
delta is followed by the full snapshot of the same version; a node whose hash for its version
is not the control plane's gets the full snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from control_plane.fleet.models import DataPlaneNode
from control_plane.fleet.services import publish_snapshot
from control_plane.grpc_api.watcher import SnapshotWatcher
from shared.pb import control_pb2, control_pb2_grpc
from tests.control_plane import factories
from tests.control_plane.test_grpc import NODE, channel, read, serving, until

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["channel"]  # the fixture, shared with test_grpc


def first_version() -> tuple[dict[str, Any], int]:
    made = factories.stack("acme")
    return made, publish_snapshot("first").snapshot.version


def create_key(made: dict[str, Any], name: str) -> int:
    factories.key(made["tenant"], [made["route"]], name=name)
    return publish_snapshot(f"key {name}").snapshot.version


async def answer(
    call: Any, pushed: control_pb2.SnapshotResponse, version: int, hash: str, error: str = ""
) -> None:
    """The node's ACK (or, with ``error``, NACK) of ``pushed``, holding ``version``/``hash``."""
    await call.write(
        control_pb2.SnapshotRequest(
            node=NODE, version=version, hash=hash, response_nonce=pushed.nonce, error_detail=error
        )
    )


async def hello_and_ack(ch: Any) -> tuple[Any, control_pb2.SnapshotResponse]:
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest(node=NODE))
    full = await read(call)
    assert full.HasField("snapshot")
    await answer(call, full, full.snapshot.version, full.snapshot.hash)
    return call, full


async def acked_then_a_key(
    ch: Any, watcher: SnapshotWatcher
) -> tuple[Any, control_pb2.SnapshotResponse, int, control_pb2.SnapshotResponse]:
    """A node that ACKed the first version; a key is created: the stream, the first push,
    the new version and what is pushed for it."""
    made, first = await sync_to_async(first_version)()
    await serving(watcher, first)
    call, full = await hello_and_ack(ch)
    version = await sync_to_async(create_key)(made, "second")
    return call, full, version, await read(call)


async def test_a_created_key_travels_as_a_delta_and_is_acked(
    channel: tuple[Any, SnapshotWatcher],
) -> None:
    call, full, version, pushed = await acked_then_a_key(*channel)
    assert pushed.HasField("delta"), "the node holds the previous version: a delta"
    delta = pushed.delta
    assert (delta.base_version, delta.base_hash) == (full.snapshot.version, full.snapshot.hash)
    assert delta.version == version
    assert [k.name for k in delta.upserts.keys] == ["second"]
    assert len(delta.upserts.routes) == 0
    assert len(delta.upserts.tenants) == 0
    assert pushed.ByteSize() < full.ByteSize()
    await answer(call, pushed, delta.version, delta.hash)
    await until(lambda: DataPlaneNode.objects.get(node_id=NODE.id).applied_version == version)
    call.cancel()


async def test_a_nacked_delta_is_followed_by_the_full_snapshot(
    channel: tuple[Any, SnapshotWatcher],
) -> None:
    call, full, version, pushed = await acked_then_a_key(*channel)
    assert pushed.HasField("delta")
    error = "a delta from v1, but the node holds nothing"
    await answer(call, pushed, full.snapshot.version, full.snapshot.hash, error)
    resync = await read(call)
    assert resync.HasField("snapshot"), "a full resync follows the refused delta"
    assert resync.snapshot.version == version
    assert resync.snapshot.hash == pushed.delta.hash
    call.cancel()


async def test_a_node_whose_hash_differs_gets_the_full_snapshot(
    channel: tuple[Any, SnapshotWatcher],
) -> None:
    ch, watcher = channel
    made, first = await sync_to_async(first_version)()
    await serving(watcher, first)
    call, full = await hello_and_ack(ch)
    call.cancel()
    await sync_to_async(create_key)(made, "second")
    stranger = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await stranger.write(
        control_pb2.SnapshotRequest(node=NODE, version=full.snapshot.version, hash="0" * 64)
    )
    pushed = await read(stranger)
    assert pushed.HasField("snapshot"), "same version, another hash: not the base of a delta"
    stranger.cancel()
