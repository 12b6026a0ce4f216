"""Snapshot identity shared by both planes: the hash of a policy (``shared.policy_index``:
SHA-256 over per-kind, per-bucket digests of each entity's deterministic encoding), so both
planes agree on it byte for byte and a delta can be checked without rehashing everything."""

from __future__ import annotations

import hashlib

from shared import policy_index
from shared.pb import snapshot_pb2


def policy_hash(policy: snapshot_pb2.Policy) -> str:
    return policy_index.policy_hash(policy)


def legacy_hash(policy: snapshot_pb2.Policy) -> str:
    """The hash of snapshots published before ADR 0006: SHA-256 of the whole encoding. A disk
    copy or a database row written then still verifies."""
    return hashlib.sha256(policy.SerializeToString(deterministic=True)).hexdigest()


def verify(snapshot: snapshot_pb2.Snapshot) -> None:
    """Raise ValueError when the snapshot's hash does not match its policy."""
    actual = policy_hash(snapshot.policy)
    if actual != snapshot.hash and legacy_hash(snapshot.policy) != snapshot.hash:
        raise ValueError(f"snapshot {snapshot.version} hash mismatch: {actual} != {snapshot.hash}")
