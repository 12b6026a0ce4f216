"""A staged rollout over the real ConfigService (a socket, the generated stubs as three data
planes would call them): the staged version is pushed to the canary alone, and the canary's
NACK stops the rollout and leaves every node on the last good version."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from asgiref.sync import sync_to_async

from control_plane.fleet.models import DataPlaneNode
from control_plane.grpc_api.watcher import SnapshotWatcher
from control_plane.rollouts import services as rollouts
from control_plane.rollouts.models import Rollout
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Tenant
from shared.pb import control_pb2, control_pb2_grpc
from tests.control_plane.test_grpc import channel as channel  # the server and its watcher
from tests.control_plane.test_grpc import read, setup_and_publish, until

pytestmark = pytest.mark.django_db(transaction=True)

NODES = ("dp-a", "dp-b", "dp-c")


def the_change() -> None:
    tenant = Tenant.objects.get(slug="acme")
    tenant.allowed_regions = ["nowhere"]
    tenancy.put_tenant(tenant, actor=None)


async def test_a_canary_nack_stops_the_rollout_and_every_node_stays_on_the_last_good_version(
    channel: tuple[grpc.aio.Channel, SnapshotWatcher],
) -> None:
    ch, watcher = channel
    v1 = await sync_to_async(setup_and_publish)()
    await watcher.refresh()
    assert watcher.latest is not None
    held = watcher.latest
    calls = {}
    for node in NODES:
        call = control_pb2_grpc.ConfigServiceStub(ch).StreamSnapshots()  # type: ignore[no-untyped-call]
        hello = control_pb2.Node(id=node, region="eu", boot_id="b")
        await call.write(control_pb2.SnapshotRequest(node=hello, version=v1, hash=held.hash))
        calls[node] = call
    await until(lambda: DataPlaneNode.objects.filter(connected=True).count() == 3)
    rollout = await sync_to_async(rollouts.start)(
        steps=[33, 100], soak_s=3600, actor=None, nodes=["dp-b"]
    )
    readers = {node: asyncio.ensure_future(read(call)) for node, call in calls.items()}
    await sync_to_async(the_change)()  # published on commit: v2, staged

    pushed = await asyncio.wait_for(readers["dp-b"], 10)
    done, _ = await asyncio.wait({readers["dp-a"], readers["dp-c"]}, timeout=0.5)
    assert not done, "the other nodes are offered nothing"

    async def refuse(pushed: control_pb2.SnapshotResponse) -> None:
        await calls["dp-b"].write(
            control_pb2.SnapshotRequest(
                node=control_pb2.Node(id="dp-b"),
                response_nonce=pushed.nonce,
                error_detail="pattern does not compile",
            )
        )

    if pushed.HasField("delta"):  # a refused delta is followed by the whole snapshot
        assert pushed.delta.version == v1 + 1, "the canary is offered the staged version"
        await refuse(pushed)
        pushed = await read(calls["dp-b"])
    assert pushed.snapshot.version == v1 + 1, "the canary is offered the staged version"
    await refuse(pushed)
    await until(lambda: Rollout.objects.get(pk=rollout.pk).state == "rolled_back")
    row = await sync_to_async(Rollout.objects.get)(pk=rollout.pk)
    assert row.reason == "node dp-b refused the version: pattern does not compile"
    # The baseline's configuration is restored: it publishes the last good policy again (the
    # same hash the nodes hold), so nothing is pushed to anyone, and every node keeps v1.
    await until(lambda: Tenant.objects.get(slug="acme").allowed_regions == [])
    done, _ = await asyncio.wait(set(readers.values()) - {readers["dp-b"]}, timeout=1.0)
    assert not done, "no node was ever offered the staged version but the canary"
    applied = await sync_to_async(
        lambda: dict(DataPlaneNode.objects.values_list("node_id", "applied_version"))
    )()
    assert applied == dict.fromkeys(NODES, v1)
    for call in calls.values():
        call.cancel()
