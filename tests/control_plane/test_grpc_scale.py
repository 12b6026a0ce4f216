"""What lets one gRPC process serve a thousand nodes. Its bookkeeping (node status, ACKs,
rollout signals, lease grants) runs on a few database threads of its own on PostgreSQL: one
node's calls always on the same thread, in the order they were made, different nodes' calls
spread over the threads; on SQLite, in Django's one sync thread as before. A change wakes
every stream through one shared future, which a stream that stops waiting cannot cancel."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection

from control_plane.grpc_api import servicers
from control_plane.grpc_api.watcher import SnapshotWatcher
from shared.pb import control_pb2, snapshot_pb2

pytestmark = pytest.mark.django_db(transaction=True)


def _where(node_id: str, seen: list[tuple[str, str]]) -> None:
    seen.append((node_id, threading.current_thread().name))


async def test_one_nodes_calls_keep_their_thread_and_order() -> None:
    seen: list[tuple[str, str]] = []
    nodes = [f"node-{n}" for n in range(40)]
    for _ in range(3):
        for node in nodes:
            await servicers._db(_where)(node, seen)
    threads_of = {node: {t for n, t in seen if n == node} for node in nodes}
    assert all(len(threads) == 1 for threads in threads_of.values())
    assert [n for n, _ in seen] == nodes * 3
    used = set().union(*threads_of.values())
    if connection.vendor == "postgresql":
        assert len(used) > 1, "several nodes, several threads"
        assert all(t.startswith("asc-db-") for t in used)
    else:
        assert len(used) == 1, "SQLite: Django's one sync thread"
    await servicers.close_ingest_connections()


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
