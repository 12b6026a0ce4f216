"""The policy hash and index (ADR 0006): the hash of a policy does not depend on the order of
its entities and changes with any entity; an index of the encoded policy hashes the same, takes
a delta's changes and gives them back; frames joined are the policy's encoding again."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.pb import snapshot_pb2
from shared.policy_index import KINDS, PolicyIndex, encode_snapshot, policy_hash, split
from shared.snapshots import legacy_hash, verify


def policy(keys: int = 5, routes: int = 2) -> snapshot_pb2.Policy:
    p = snapshot_pb2.Policy()
    p.tenants.add(id="t-1", slug="one")
    p.providers.add(id="p-1", name="mock", options={"b": "2", "a": "1"})
    for n in range(routes):
        p.routes.add(id=f"r-{n}", tenant_id="t-1", name=f"route-{n}")
    for n in range(keys):
        p.keys.add(id=f"k-{n}", tenant_id="t-1", key_hash=f"{n:064x}", route_ids=["r-0"])
    return p


@given(st.randoms(use_true_random=False))
def test_the_hash_does_not_depend_on_the_order_of_entities(rand: object) -> None:
    p = policy(keys=20)
    keys = list(p.keys)
    rand.shuffle(keys)  # type: ignore[attr-defined]  # a random.Random from hypothesis
    shuffled = snapshot_pb2.Policy()
    shuffled.CopyFrom(p)
    del shuffled.keys[:]
    shuffled.keys.extend(keys)
    assert policy_hash(shuffled) == policy_hash(p)


def test_any_change_of_an_entity_changes_the_hash() -> None:
    base = policy_hash(policy())
    for change in (
        lambda p: setattr(p.keys[3], "name", "renamed"),
        lambda p: p.keys[0].route_ids.append("r-1"),
        lambda p: p.providers[0].options.update({"c": "3"}),
        lambda p: p.keys.pop(),
        lambda p: p.limits.add(id="l-1"),
    ):
        changed = policy()
        change(changed)
        assert policy_hash(changed) != base


def test_an_entity_moved_to_another_kind_changes_the_hash() -> None:
    a, b = snapshot_pb2.Policy(), snapshot_pb2.Policy()
    a.projects.add(id="x", tenant_id="t")
    b.tenants.add(id="x")
    b.tenants[0].slug = "t"  # same field numbers and values, another kind
    assert policy_hash(a) != policy_hash(b)


def test_the_index_hashes_like_the_policy_and_rehashes_after_a_delta() -> None:
    p = policy()
    index = PolicyIndex.build(p)
    assert index.hash() == policy_hash(p)
    delta = snapshot_pb2.SnapshotDelta()
    new_key = delta.upserts.keys.add(id="k-new", tenant_id="t-1", key_hash="f" * 64)
    changed_route = delta.upserts.routes.add()
    changed_route.CopyFrom(p.routes[1])
    changed_route.name = "renamed"
    delta.removed.keys.extend(["k-2", "k-unknown"])
    changes = index.apply(delta)
    assert {(c.kind, c.id) for c in changes} == {
        ("keys", "k-new"),
        ("routes", "r-1"),
        ("keys", "k-2"),
    }, "removing an id the policy lacks changes nothing"
    expected = snapshot_pb2.Policy()
    expected.CopyFrom(p)
    del expected.keys[2]
    expected.keys.append(new_key)
    expected.routes[1].name = "renamed"
    assert index.hash() == policy_hash(expected)
    index.revert(changes)
    assert index.hash() == policy_hash(p)


def test_frames_joined_are_the_encoding_of_the_snapshot() -> None:
    p = policy()
    snapshot = snapshot_pb2.Snapshot(version=7, hash="abc", created_unix_ms=1234, policy=p)
    index = PolicyIndex.build(p)
    frames = [f for kind in KINDS for f in index.frames(kind)]
    decoded = snapshot_pb2.Snapshot.FromString(encode_snapshot(7, "abc", 1234, frames))
    assert (decoded.version, decoded.hash, decoded.created_unix_ms) == (7, "abc", 1234)
    for kind in KINDS:  # the same entities, in bucket order
        assert sorted(e.id for e in getattr(decoded.policy, kind)) == sorted(
            e.id for e in getattr(snapshot.policy, kind)
        )
    assert policy_hash(decoded.policy) == policy_hash(p)
    assert decoded.policy.providers[0] == p.providers[0]
    encoded = p.SerializeToString(deterministic=True)
    assert b"".join(f for _, _, _, f in split(encoded)) == encoded


def test_a_repeated_id_cannot_be_indexed_but_has_a_hash() -> None:
    p = policy()
    p.keys.add(id="k-0", tenant_id="t-1", key_hash="e" * 64)
    with pytest.raises(ValueError, match="duplicate keys id k-0"):
        PolicyIndex.build(p)
    assert policy_hash(p) != policy_hash(policy())


def test_a_snapshot_hashed_the_old_way_still_verifies() -> None:
    """Disk copies and database rows written before ADR 0006 hash the whole encoding."""
    p = policy()
    verify(snapshot_pb2.Snapshot(version=1, hash=legacy_hash(p), policy=p))
    verify(snapshot_pb2.Snapshot(version=1, hash=policy_hash(p), policy=p))
    with pytest.raises(ValueError, match="hash mismatch"):
        verify(snapshot_pb2.Snapshot(version=1, hash="0" * 64, policy=p))
