"""Applying what the control plane pushes: a full snapshot or a delta (ADR 0006).

The applier keeps the index of the policy in force (``shared.policy_index``: every entity's
encoding, hashed per bucket). A full snapshot is indexed, hashed, compiled (all in slices on
the loop) and swapped in. A delta is applied only to the version and hash it names: the index
takes its changes, the new hash is computed from the few buckets they touch and compared with
the delta's, the changes are checked (``policy.incremental``) and compiled into a new policy
that shares everything else with the previous one; on any refusal the index is put back and the
previous policy stays in force. The disk copy is always a full snapshot, written from the index.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Generator
from pathlib import Path

from data_plane.policy.compiled import CompiledPolicy
from data_plane.policy.incremental import Changed, apply_changes, leaf_problems
from data_plane.snapshots.store import MAGIC, SnapshotStore, read_regular_file
from shared import consistency
from shared.pb import snapshot_pb2
from shared.policy_index import (
    KINDS,
    SLICE,
    PolicyIndex,
    encode_snapshot,
    policy_of_snapshot,
)
from shared.snapshots import legacy_hash

log = logging.getLogger(__name__)


class DeltaRefused(ValueError):
    """The delta does not apply to what the node holds (another base, no index of it)."""


async def sliced[T](steps: Generator[None, None, T]) -> T:
    """Run a generator to its end, letting the loop serve between two of its slices."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            result: T = done.value
            return result
        await asyncio.sleep(0)


def _policy_steps(index: PolicyIndex) -> Generator[None, None, snapshot_pb2.Policy]:
    policy = snapshot_pb2.Policy()
    for kind in KINDS:
        frames = index.frames(kind)
        for start in range(0, len(frames), SLICE):
            policy.MergeFromString(b"".join(frames[start : start + SLICE]))
            yield
    return policy


def _read_policy(path: Path) -> bytes:
    """The encoded policy of the disk copy, when its checksum holds; b"" otherwise."""
    try:
        data = read_regular_file(path)
    except OSError:
        return b""
    checksum, sep, payload = data[len(MAGIC) :].partition(b"\n")
    if not data.startswith(MAGIC) or not sep:
        return b""
    if hashlib.sha256(payload).hexdigest().encode() != checksum:
        return b""
    return policy_of_snapshot(payload)


class PolicyApplier:
    def __init__(self, store: SnapshotStore) -> None:
        self.store = store
        self.index: PolicyIndex | None = None
        self._indexed = ""  # the hash of the policy ``index`` holds

    async def full(
        self, snapshot: snapshot_pb2.Snapshot, encoded: bytes | None = None
    ) -> CompiledPolicy:
        """Index, check and compile a full snapshot, and swap it in; ``encoded`` is its policy
        as received, when the caller has it (else it is encoded again, in a thread). Raises
        ValueError (hash mismatch, InconsistentSnapshot, PolicyError) and changes nothing."""
        if encoded is None:
            encoded = await asyncio.to_thread(snapshot.policy.SerializeToString, deterministic=True)
        index = await sliced(PolicyIndex.build_steps(encoded))
        digest = await sliced(index.hash_steps())
        if (
            digest != snapshot.hash
            and await asyncio.to_thread(legacy_hash, snapshot.policy) != snapshot.hash
        ):
            raise ValueError(
                f"snapshot {snapshot.version} hash mismatch: {digest} != {snapshot.hash}"
            )
        policy = await self.store.compile_serving(snapshot)
        self.store.swap(policy)
        self.index, self._indexed = index, snapshot.hash
        return policy

    async def delta(self, delta: snapshot_pb2.SnapshotDelta) -> CompiledPolicy:
        """Apply a delta to the policy in force and swap the result in. Raises DeltaRefused
        (another base: the control plane resyncs the node in full) or ValueError (the result
        does not hash like the delta says, is inconsistent or cannot be compiled); either way
        the previous policy stays in force, its index unchanged."""
        current = self.store.current
        if current is None or (current.version, current.hash) != (
            delta.base_version,
            delta.base_hash,
        ):
            held = f"v{current.version}" if current else "nothing"
            raise DeltaRefused(f"a delta from v{delta.base_version}, but the node holds {held}")
        index = await self._index_of(current)
        changes = index.apply(delta)
        try:
            digest = await sliced(index.hash_steps())
            if digest != delta.hash:
                raise ValueError(
                    f"delta to v{delta.version}: the result hashes to {digest}, not {delta.hash}"
                )
            changed = Changed.of(changes)
            if changed.leaf_only:
                problems = leaf_problems(changed, index.get, index.frames)
            else:
                whole = await sliced(_policy_steps(index))
                problems = await sliced(consistency.problem_steps(whole))
            if problems:
                raise consistency.InconsistentSnapshot(problems)
            policy = apply_changes(
                current,
                changed,
                index.get,
                self.store.keyring,
                version=delta.version,
                hash=delta.hash,
                created_unix_ms=delta.created_unix_ms,
            )
        except BaseException:
            index.revert(changes)
            raise
        self.store.swap(policy)
        self._indexed = delta.hash
        return policy

    async def _index_of(self, current: CompiledPolicy) -> PolicyIndex:
        """The index of the policy in force; after a restart, built from the disk copy."""
        if self.index is not None and self._indexed == current.hash:
            return self.index
        encoded = await asyncio.to_thread(_read_policy, self.store.path)
        index = await sliced(PolicyIndex.build_steps(encoded))
        if await sliced(index.hash_steps()) != current.hash:
            raise DeltaRefused("the node has no index of the policy it holds")
        self.index, self._indexed = index, current.hash
        return index

    async def persist(self) -> None:
        """Write the policy in force to the disk copy, in full: the frames are gathered on the
        loop, joined, checksummed and written in a thread."""
        current, index = self.store.current, self.index
        if current is None or index is None or self._indexed != current.hash:
            return
        frames = [f for kind in KINDS for f in index.frames(kind)]
        version = current.version

        def write() -> None:
            payload = encode_snapshot(version, current.hash, current.created_unix_ms, frames)
            self.store.persist_encoded(version, payload)

        await asyncio.to_thread(write)
