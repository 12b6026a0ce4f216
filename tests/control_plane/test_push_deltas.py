"""The push state with deltas (ADR 0006): a NACKed delta is not a refusal of its hash; the same
version is due again, as a full snapshot, and no delta goes out until a full one is ACKed. The
history builds a delta only from a version it saw, with the hash it saw."""

from __future__ import annotations

import pytest

from control_plane.grpc_api.acks import AckRecorder
from control_plane.grpc_api.deltas import MAX_ENTITIES, DeltaHistory, Latest
from control_plane.grpc_api.push import PushState
from control_plane.grpc_api.servicers import delta_response
from shared.pb import control_pb2, snapshot_pb2
from shared.policy_index import PolicyIndex, policy_hash


def test_a_nacked_delta_makes_the_same_version_due_in_full() -> None:
    state = PushState(1, "h1")
    state.pushed("n2", "h2", 1.0, delta=True)
    answer = state.answered("n2", version=1, hash="h1", error="out of order", now=1.5)
    assert answer is not None
    assert (answer.result, answer.delta) == ("nack", True)
    assert (state.version, state.hash, state.refused) == (1, "h1", "")
    assert state.due("h2"), "the same version is due again"
    assert state.needs_full
    with pytest.raises(ValueError, match="full snapshot is due"):
        state.pushed("n3", "h2", 2.0, delta=True)
    state.pushed("n3", "h2", 2.0)
    answer = state.answered("n3", version=2, hash="h2", error="", now=2.5)
    assert answer is not None
    assert (answer.result, answer.delta) == ("ack", False)
    assert not state.needs_full


def test_a_nacked_full_snapshot_is_still_a_refusal_of_its_hash() -> None:
    state = PushState(1, "h1")
    state.pushed("n2", "h2", 1.0, delta=True)
    state.answered("n2", version=1, hash="h1", error="out of order", now=1.5)
    state.pushed("n3", "h2", 2.0)
    state.answered("n3", version=1, hash="h1", error="cannot open credential", now=2.5)
    assert state.refused == "h2"
    assert not state.due("h2")
    assert state.due("h3")


def test_an_acked_delta_records_the_new_version() -> None:
    state = PushState(1, "h1")
    state.pushed("n2", "h2", 1.0, delta=True)
    answer = state.answered("n2", version=2, hash="h2", error="", now=1.25)
    assert answer is not None
    assert answer.result == "ack"
    assert (state.version, state.hash) == (2, "h2")
    assert not state.due("h2")


def _latest(version: int, keys: int) -> Latest:
    policy = snapshot_pb2.Policy()
    policy.tenants.add(id="t")
    for n in range(keys):
        policy.keys.add(id=f"k-{n}", tenant_id="t", key_hash=f"{n:064x}")
    index = PolicyIndex.build(policy)
    digest = index.hash()
    assert digest == policy_hash(policy)
    return Latest(version, digest, version, index)


def _history(*versions: Latest) -> DeltaHistory:
    history = DeltaHistory()
    for latest in versions:
        history.advance(latest, history.step_to(latest))
    return history


def test_the_history_builds_deltas_from_versions_it_saw_with_their_hash() -> None:
    v1, v2, v3 = _latest(1, 3), _latest(2, 4), _latest(3, 2)
    history = _history(v1, v2, v3)
    delta = history.delta_for(1, v1.hash, v3.hash)
    assert delta is not None
    assert (delta.base_version, delta.version, delta.hash) == (1, 3, v3.hash)
    assert [k.id for k in delta.upserts.keys] == []
    assert sorted(delta.removed.keys) == ["k-2", "k-3"], "k-3 came and went: removed anyway"
    assert history.delta_for(1, "another hash", v3.hash) is None
    assert history.delta_for(2, v2.hash, "not the latest") is None
    assert history.delta_for(3, v3.hash, v3.hash) is None, "nothing to send"
    assert history.delta_for(0, "", v3.hash) is None, "a new node gets it all"


def test_a_delta_is_encoded_once_for_every_node_on_the_same_version() -> None:
    v1, v2, v3 = _latest(1, 3), _latest(2, 4), _latest(3, 2)
    history = _history(v1, v2, v3)
    encoded = history.encoded_delta_for(1, v1.hash, v3.hash)
    assert encoded is not None
    assert history.encoded_delta_for(1, v1.hash, v3.hash) is encoded
    response = control_pb2.SnapshotResponse.FromString(delta_response("n-1", encoded))
    assert response.nonce == "n-1"
    assert response.delta == history.delta_for(1, v1.hash, v3.hash)
    assert history.encoded_delta_for(2, v2.hash, v3.hash) != encoded, "another base"
    assert history.encoded_delta_for(1, "another hash", v3.hash) is None
    v4 = _latest(4, 1)
    history.advance(v4, history.step_to(v4))
    again = history.encoded_delta_for(1, v1.hash, v4.hash)
    assert again is not None
    assert snapshot_pb2.SnapshotDelta.FromString(again).version == 4


def test_a_delta_larger_than_the_limit_is_not_built() -> None:
    history = _history(_latest(1, 0), _latest(2, MAX_ENTITIES + 1))
    latest = history.latest
    assert latest is not None
    assert history.delta_for(1, _latest(1, 0).hash, latest.hash) is None


async def test_acks_are_written_in_bulk_the_latest_per_node() -> None:
    written: list[tuple[list[str], int, str]] = []

    async def write(node_ids: list[str], version: int, hash: str) -> None:
        written.append((node_ids, version, hash))

    recorder = AckRecorder(write, interval=3600)
    recorder.acked("n-1", 1, "h1")
    recorder.acked("n-2", 2, "h2")
    recorder.acked("n-1", 2, "h2")  # replaces n-1's earlier ACK
    recorder.acked("n-3", 1, "h1")
    assert written == [], "nothing written on the stream's path"
    await recorder.close()
    assert sorted(written) == [(["n-1", "n-2"], 2, "h2"), (["n-3"], 1, "h1")]
