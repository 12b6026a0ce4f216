"""The snapshot push state of one node's stream, without gRPC: what is due, what an ACK, a
NACK or a stale nonce does, and that at most one push is ever unacknowledged."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.grpc_api.push import Answer, Pending, PushState


def pushed(state: PushState, nonce: str, hash: str, now: float = 10.0) -> None:
    assert state.due(hash)
    state.pushed(nonce, hash, now)


def ack(state: PushState, nonce: str, version: int, hash: str, now: float = 11.0) -> Answer | None:
    return state.answered(nonce, version=version, hash=hash, error="", now=now)


def nack(
    state: PushState, nonce: str, error: str = "bad route", now: float = 11.0
) -> Answer | None:
    return state.answered(nonce, version=0, hash="", error=error, now=now)


def snapshot(state: PushState) -> tuple[int, str, str, Pending | None]:
    return state.version, state.hash, state.refused, state.pending


def test_nothing_is_due_before_anything_is_published() -> None:
    assert not PushState(0, "").due(None)


def test_a_new_node_is_due_the_latest() -> None:
    assert PushState(0, "").due("h1")


def test_same_hash_means_nothing_to_send() -> None:
    state = PushState(3, "h3")
    assert not state.due("h3")
    with pytest.raises(ValueError, match="no push"):
        state.pushed("n1", "h3", 1.0)
    assert state.pending is None


def test_a_node_holding_an_older_snapshot_is_due_the_latest() -> None:
    assert PushState(2, "h2").due("h3")


def test_ack_of_the_pending_nonce_records_what_the_node_holds() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2", now=100.0)
    answer = ack(state, "n2", 2, "h2", now=100.25)
    assert answer == Answer("ack", "h2", 0.25, "")
    assert (state.version, state.hash, state.pending) == (2, "h2", None)
    assert not state.due("h2")


def test_an_ack_takes_the_nodes_own_word_for_what_it_holds() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    answer = ack(state, "n2", 7, "h7")
    assert answer is not None
    assert answer.hash == "h2"
    assert (state.version, state.hash) == (7, "h7")  # what the node says it holds
    assert state.due("h2")


def test_nack_keeps_the_node_on_the_previous_version() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2", now=5.0)
    answer = nack(state, "n2", "unknown provider", now=6.5)
    assert answer == Answer("nack", "h2", 1.5, "unknown provider")
    assert (state.version, state.hash, state.pending) == (1, "h1", None)


def test_a_refused_snapshot_is_held_back_until_a_new_one() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    nack(state, "n2")
    assert state.refused == "h2"
    assert not state.due("h2")
    with pytest.raises(ValueError, match="no push"):
        state.pushed("n2b", "h2", 12.0)
    assert state.due("h3")
    pushed(state, "n3", "h3")
    assert ack(state, "n3", 3, "h3") is not None
    assert (state.version, state.hash) == (3, "h3")
    assert not state.due("h3")


def test_the_next_refusal_replaces_the_previous_one() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    nack(state, "n2")
    pushed(state, "n3", "h3")
    nack(state, "n3")
    assert (state.version, state.hash, state.refused) == (1, "h1", "h3")
    assert not state.due("h3")
    assert state.due("h4")


@pytest.mark.parametrize("error", ["", "late refusal"])
def test_a_stale_nonce_is_ignored(error: str) -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    before = snapshot(state)
    assert state.answered("n-old", version=9, hash="h9", error=error, now=11.0) is None
    assert snapshot(state) == before
    assert ack(state, "n2", 2, "h2") is not None  # the pending push is still answerable


@pytest.mark.parametrize("nonce", ["", "n-unknown"])
def test_an_answer_when_nothing_is_pending_is_ignored(nonce: str) -> None:
    state = PushState(1, "h1")
    assert ack(state, nonce, 5, "h5") is None
    assert nack(state, nonce) is None
    assert snapshot(state) == (1, "h1", "", None)


def test_a_nonce_is_answered_once() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    assert ack(state, "n2", 2, "h2") is not None
    assert nack(state, "n2") is None  # a late NACK of an acknowledged push
    assert (state.version, state.hash, state.refused) == (2, "h2", "")


def test_at_most_one_unacknowledged_push_per_node() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    assert not state.due("h2")
    assert not state.due("h3")
    with pytest.raises(ValueError, match="no push"):
        state.pushed("n3", "h3", 12.0)
    assert state.pending == Pending("n2", "h2", 10.0)


def test_a_new_version_while_one_is_pending_goes_out_after_the_answer() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    assert not state.due("h3")  # h3 published while h2 awaits its answer
    ack(state, "n2", 2, "h2")
    assert state.due("h3")
    pushed(state, "n3", "h3")
    assert ack(state, "n2", 2, "h2") is None  # the old nonce no longer counts
    assert ack(state, "n3", 3, "h3") is not None
    assert (state.version, state.hash) == (3, "h3")


def test_a_nack_while_a_newer_version_waits_lets_the_newer_one_out() -> None:
    state = PushState(1, "h1")
    pushed(state, "n2", "h2")
    nack(state, "n2")
    assert state.due("h3")


def test_a_push_needs_a_nonce() -> None:
    state = PushState(0, "")
    with pytest.raises(ValueError, match="nonce"):
        state.pushed("", "h1", 1.0)
    assert state.pending is None


# A stream driven as the servicer drives it: after every event, push the latest if due.
events = st.lists(
    st.sampled_from(["publish", "ack", "nack", "stale", "ack-other-hash"]), max_size=30
)


@given(events, st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_stream_keeps_the_invariants(script: list[str], node_holds_v1: bool) -> None:
    state = PushState(1, "h1") if node_holds_v1 else PushState(0, "")
    published, latest = 1, "h1"
    pushes: list[str] = []  # nonces sent
    answered_nonces: set[str] = set()
    for step, event in enumerate(script):
        if state.due(latest):
            assert latest not in (state.hash, state.refused)
            nonce = f"n{len(pushes)}"
            state.pushed(nonce, latest, float(step))
            pushes.append(nonce)
        # at most one push awaits an answer, and it is the last one sent
        unanswered = [n for n in pushes if n not in answered_nonces]
        assert len(unanswered) <= 1
        assert state.pending is None or [state.pending.nonce] == unanswered
        # nothing pending means the node holds or refused the latest
        assert state.pending is not None or latest in (state.hash, state.refused)

        before = snapshot(state)
        pending = state.pending
        if event == "publish":
            published += 1
            latest = f"h{published}"
            continue
        if event == "stale":
            assert state.answered("n-stale", version=0, hash="", error="", now=0.0) is None
            assert snapshot(state) == before
            continue
        nonce = pushes[-1] if pushes else "n-none"
        error = "refused" if event == "nack" else ""
        if event == "ack-other-hash":
            version, hash = 99, "h-other"
        else:  # the node reports the snapshot it was sent
            version, hash = (int(pending.hash[1:]), pending.hash) if pending else (0, "")
        answer = state.answered(nonce, version=version, hash=hash, error=error, now=float(step))
        if pending is None:  # answered already, or never pushed
            assert answer is None
            assert snapshot(state) == before
            continue
        answered_nonces.add(nonce)
        assert answer is not None
        assert answer.hash == pending.hash
        assert answer.result == ("nack" if error else "ack")
        assert state.pending is None
        if error:
            assert snapshot(state) == (before[0], before[1], pending.hash, None)
        else:
            assert snapshot(state) == (version, hash, before[2], None)
