"""What lets one gRPC process serve a thousand nodes: its database thread checks its
connection at most once a second (and after an error), a change wakes every stream through
one shared future, which a stream that stops waiting cannot cancel, and a full snapshot is
pushed as its encoding, made once."""

from __future__ import annotations

import asyncio

import pytest

from control_plane.grpc_api import servicers
from control_plane.grpc_api.watcher import SnapshotWatcher
from shared.pb import control_pb2, snapshot_pb2

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_failed_call_is_followed_by_a_connection_check() -> None:
    checked: list[float] = []

    def fail(node_id: str) -> None:
        checked.append(servicers._checked.at)  # the check this call made (or an earlier one)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await servicers._db(fail)("node-1")

    def check_time(node_id: str) -> float:
        return float(servicers._checked.at)

    # Within a second of the failed call, the next one checks its connection again.
    assert await servicers._db(check_time)("node-1") > checked[0]
    await servicers.close_ingest_connections()


async def test_one_change_wakes_every_waiting_stream_and_no_waiter_can_cancel_it() -> None:
    watcher = SnapshotWatcher(poll_s=60)
    streams = [asyncio.ensure_future(watcher.wait_changed()) for _ in range(3)]
    quitter = asyncio.ensure_future(watcher.wait_changed())
    await asyncio.sleep(0)
    quitter.cancel()  # a stream that ends while waiting
    await asyncio.sleep(0)
    shared = watcher.changed()
    assert not shared.cancelled()
    watcher._wake()
    await asyncio.gather(*streams)
    assert shared.done()
    assert watcher.changed() is not shared, "the next change has a future of its own"


def test_a_full_push_carries_the_snapshot_encoded_once() -> None:
    snapshot = snapshot_pb2.Snapshot(version=7, hash="h" * 64, created_unix_ms=5)
    snapshot.policy.tenants.add(id="t-1", slug="acme")
    watcher = SnapshotWatcher(poll_s=60)
    encoded = watcher.encoded(snapshot)
    assert watcher.encoded(snapshot) is encoded, "encoded once per version"
    response = control_pb2.SnapshotResponse.FromString(servicers.full_response("n-1", encoded))
    assert response == control_pb2.SnapshotResponse(nonce="n-1", snapshot=snapshot)
