"""A large full snapshot pushed in parts (``SnapshotPart``) to a node that says it takes them,
over a real socket: every part of the push has its nonce, they make the published snapshot
again, and the one ACK after the last part is recorded as for a snapshot in one message."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from control_plane.fleet.models import DataPlaneNode
from control_plane.grpc_api import servicers
from shared.pb import control_pb2, control_pb2_grpc, snapshot_pb2
from shared.snapshot_parts import Reassembly
from tests.control_plane.test_grpc import (
    NODE,
    channel,
    read,
    serving,
    setup_and_publish,
    until,
)

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["channel"]  # the fixture, shared with test_grpc


def test_a_full_snapshot_goes_in_parts_only_to_a_node_that_takes_them_and_when_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(servicers, "PART_BYTES", 300)
    policy = snapshot_pb2.Policy(tenants=[snapshot_pb2.Tenant(id=f"t-{n}") for n in range(150)])
    encoded = snapshot_pb2.Snapshot(version=3, hash="h", policy=policy).SerializeToString()
    assert len(encoded) > 900
    whole = [
        control_pb2.SnapshotResponse.FromString(r)
        for r in servicers.full_responses("n-1", encoded, parts=False)
    ]
    assert len(whole) == 1
    assert whole[0].snapshot.policy == policy
    parts = [
        control_pb2.SnapshotResponse.FromString(r)
        for r in servicers.full_responses("n-1", encoded, parts=True)
    ]
    assert len(parts) == -(-len(encoded) // 300)
    assert b"".join(p.part.data for p in parts) == encoded
    small = snapshot_pb2.Snapshot(version=3, hash="h").SerializeToString()
    (one,) = servicers.full_responses("n-1", small, parts=True)  # not larger than a part
    assert control_pb2.SnapshotResponse.FromString(one).snapshot.version == 3


async def test_a_node_that_takes_parts_gets_a_large_snapshot_in_parts(
    channel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicers, "PART_BYTES", 300)  # the snapshot below is a few KiB
    ch, watcher = channel
    v1 = await sync_to_async(setup_and_publish)()
    await serving(watcher, v1)
    call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
    await call.write(control_pb2.SnapshotRequest(node=NODE, accepts_parts=True))
    reassembly, responses = Reassembly(), []
    whole = None
    while whole is None:
        response = await read(call)
        assert response.HasField("part")
        assert len(response.part.data) <= 300
        responses.append(response)
        whole = reassembly.add(response.nonce, response.part)
    assert len(responses) > 2
    assert {r.nonce for r in responses} == {responses[0].nonce}
    snapshot = snapshot_pb2.Snapshot.FromString(whole)
    assert snapshot.version == v1
    await call.write(
        control_pb2.SnapshotRequest(
            node=NODE, version=v1, hash=snapshot.hash, response_nonce=responses[0].nonce
        )
    )
    await until(
        lambda: DataPlaneNode.objects.filter(node_id="dp-test", applied_version=v1).exists()
    )
    call.cancel()
