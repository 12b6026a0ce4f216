"""The incremental side of the snapshot benchmark (ADR 0006): one key created in a 100k-key
installation, as the control plane's delta history builds it and a data plane applies it.

In process: the size of the response a node receives, the time to apply it
(``PolicyApplier.delta``: index, hash of the touched buckets, check, compile of the key, swap)
and, apart, the full disk copy written before the ACK; and the full snapshot applied by
``PolicyApplier.full_encoded`` (encoded, as the config client receives it) with a 1 ms ticker
on the loop to show its worst lateness.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from control_plane.grpc_api.deltas import DeltaHistory, Latest
from data_plane.snapshots.applier import PolicyApplier, split_snapshot
from data_plane.snapshots.store import SnapshotStore
from shared.crypto import Keyring, hash_key
from shared.pb import control_pb2, snapshot_pb2
from shared.policy_index import PolicyIndex
from shared.snapshots import policy_hash

NEW_KEY_SECRET = "sk-asc-bench-created-by-the-delta"

LagProbe = Callable[[Callable[[], Awaitable[Any]]], Awaitable[tuple[float, float]]]


def with_new_key(snapshot: snapshot_pb2.Snapshot, version: int) -> snapshot_pb2.Snapshot:
    """``snapshot`` with one more key (in its first tenant, granted that tenant's first route)."""
    policy = snapshot_pb2.Policy()
    policy.CopyFrom(snapshot.policy)
    first = policy.keys[0]
    policy.keys.add(
        id="00000000-0000-4000-8000-00000000beef",
        tenant_id=first.tenant_id,
        name="created",
        key_hash=hash_key(NEW_KEY_SECRET),
        route_ids=first.route_ids[:1],
    )
    return snapshot_pb2.Snapshot(
        version=version,
        hash=policy_hash(policy),
        created_unix_ms=snapshot.created_unix_ms + 1,
        policy=policy,
    )


def _latest(snapshot: snapshot_pb2.Snapshot) -> Latest:
    index = PolicyIndex.build(snapshot.policy)
    index.hash()
    return Latest(snapshot.version, snapshot.hash, snapshot.created_unix_ms, index)


def delta_between(
    old: snapshot_pb2.Snapshot, new: snapshot_pb2.Snapshot
) -> snapshot_pb2.SnapshotDelta:
    """The delta the control plane's history builds for a node holding ``old``."""
    history = DeltaHistory()
    for snapshot in (old, new):
        latest = _latest(snapshot)
        history.advance(latest, history.step_to(latest))
    delta = history.delta_for(old.version, old.hash, new.hash)
    assert delta is not None
    return delta


async def measure(
    snapshot: snapshot_pb2.Snapshot, keyring: Keyring, work: Path, lag: LagProbe
) -> dict[str, float]:
    """In process, on the running loop: the full apply (with the ticker's worst lateness),
    then one created key as a delta."""
    encoded = snapshot.SerializeToString(deterministic=True)
    store = SnapshotStore(work / "bench-snapshot.bin", keyring)
    applier = PolicyApplier(store)
    loop_cpu = time.thread_time()  # the loop's thread: what the apply took from requests
    full_lag, full_s = await lag(lambda: applier.full_encoded(*split_snapshot(encoded)))
    loop_cpu = time.thread_time() - loop_cpu
    started = time.perf_counter()
    await applier.persist()
    persist_full_s = time.perf_counter() - started
    started = time.perf_counter()
    await applier.indexed()  # a large policy is indexed after the swap, for the next delta
    index_after_s = time.perf_counter() - started
    created = with_new_key(snapshot, snapshot.version + 1)
    delta = delta_between(snapshot, created)
    response = control_pb2.SnapshotResponse(nonce="0" * 32, delta=delta).SerializeToString()
    started = time.perf_counter()
    applied = await applier.delta(snapshot_pb2.SnapshotDelta.FromString(delta.SerializeToString()))
    apply_s = time.perf_counter() - started
    assert applied.hash == created.hash
    assert hash_key(NEW_KEY_SECRET) in applied.keys_by_hash
    started = time.perf_counter()
    await applier.persist()
    persist_s = time.perf_counter() - started
    os.unlink(store.path)
    applier.close()
    return {
        "full_apply_s": full_s,
        "full_lag_ms": full_lag * 1000,
        "full_loop_cpu_s": loop_cpu,
        "persist_full_s": persist_full_s,
        "index_after_s": index_after_s,
        "delta_bytes": float(len(response)),
        "delta_apply_ms": apply_s * 1000,
        "delta_persist_ms": persist_s * 1000,
    }
