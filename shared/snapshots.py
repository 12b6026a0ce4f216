"""Snapshot identity shared by both planes: the hash is SHA-256 over the deterministic
protobuf encoding of the policy, so both planes agree on it byte for byte."""

from __future__ import annotations

import hashlib

from shared.pb import snapshot_pb2


def policy_hash(policy: snapshot_pb2.Policy) -> str:
    return hashlib.sha256(policy.SerializeToString(deterministic=True)).hexdigest()


def verify(snapshot: snapshot_pb2.Snapshot) -> None:
    """Raise ValueError when the snapshot's hash does not match its policy."""
    actual = policy_hash(snapshot.policy)
    if actual != snapshot.hash:
        raise ValueError(f"snapshot {snapshot.version} hash mismatch: {actual} != {snapshot.hash}")
