"""The node's lease book (pure): reserve the worst case, settle to the actual, refuse past
the grant, wait for a first lease, and fall back without one (hard budgets fail closed, rate
limits keep to a safe share)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.errors import ApiError
from data_plane.limits.leases import Admission, LeaseBook, NeedsLease
from data_plane.limits.rules import BUDGET, REQUESTS, Demand
from data_plane.policy.compiled import LimitEntry
from shared import windows
from shared.pb import control_pb2

NOW, UNIX = 1000.0, 1_795_000_000.0
BUDGET_LIMIT = LimitEntry("l-budget", "t", "t", BUDGET, "none", "UTC", 1_000, True)
RPM = LimitEntry("l-rpm", "t", "t", REQUESTS, "minute", "UTC", 100, True)


def granted(
    book: LeaseBook, limit: LimitEntry, units: int, nodes: int = 1, ttl_ms: int = 10_000
) -> None:
    """Answer the book's asks for ``limit`` with a grant of ``units`` in all."""
    asks = [a for a in book.asks(NOW, UNIX) if a.limit_id == limit.id]
    window = asks[0].window if asks else book.leases[limit.id].window
    book.apply(
        [
            control_pb2.LeaseGrant(
                limit_id=limit.id,
                window=window,
                granted=units,
                remaining=0,
                ttl_ms=ttl_ms,
                nodes=nodes,
            )
        ],
        NOW,
    )


def test_a_first_use_waits_for_a_lease_then_reserves_and_settles() -> None:
    book = LeaseBook()
    assert isinstance(book.admit([BUDGET_LIMIT], Demand(1, 0, 300), NOW, UNIX), NeedsLease)
    granted(book, BUDGET_LIMIT, 1_000)
    admission = book.admit([BUDGET_LIMIT], Demand(1, 0, 300), NOW, UNIX)
    assert isinstance(admission, Admission)
    lease = book.leases[BUDGET_LIMIT.id]
    assert lease.committed == 300, "the worst case is reserved"
    book.settle(admission, Demand(1, 0, 120))
    assert lease.committed == 120, "and replaced by the actual cost"


def test_past_the_grant_a_hard_budget_refuses() -> None:
    book = LeaseBook()
    book.admit([BUDGET_LIMIT], Demand(1, 0, 600), NOW, UNIX)
    granted(book, BUDGET_LIMIT, 1_000)
    assert isinstance(book.admit([BUDGET_LIMIT], Demand(1, 0, 600), NOW, UNIX), Admission)
    refused = book.admit([BUDGET_LIMIT], Demand(1, 0, 600), NOW, UNIX, may_wait=False)
    assert isinstance(refused, ApiError)
    assert (refused.status, refused.code) == (429, "budget_exceeded")


def test_all_or_nothing_across_limits() -> None:
    book = LeaseBook()
    for limit in (BUDGET_LIMIT, RPM):
        book.admit([limit], Demand(), NOW, UNIX)
    granted(book, BUDGET_LIMIT, 100)
    granted(book, RPM, 100)
    refused = book.admit([RPM, BUDGET_LIMIT], Demand(1, 0, 500), NOW, UNIX, may_wait=False)
    assert isinstance(refused, ApiError)
    assert book.leases[RPM.id].committed == 0, "nothing reserved when one limit refuses"


def test_without_the_control_plane_hard_budgets_fail_closed_and_rate_limits_take_a_share() -> None:
    book = LeaseBook(reachable=False)
    refused = book.admit([BUDGET_LIMIT], Demand(1, 0, 1), NOW, UNIX)
    assert isinstance(refused, ApiError)
    assert (refused.status, refused.code) == (503, "limits_unavailable")
    soft = replace(BUDGET_LIMIT, id="soft", hard=False)
    assert isinstance(book.admit([soft], Demand(1, 0, 10**9), NOW, UNIX), Admission)

    book.leases.clear()
    book.admit([RPM], Demand(), NOW, UNIX)
    book.leases[RPM.id].nodes = 4  # the last grant said four nodes share the limit
    admitted = [book.admit([RPM], Demand(), NOW, UNIX) for _ in range(40)]
    assert sum(isinstance(a, Admission) for a in admitted) == 25 - 1, "amount / nodes in all"
    refusal = admitted[-1]
    assert isinstance(refusal, ApiError)
    assert refusal.code == "rate_limited"
    assert refusal.retry_after is not None


def test_a_lapsed_lease_is_not_used() -> None:
    book = LeaseBook(reachable=False)
    book.reachable = True
    book.admit([BUDGET_LIMIT], Demand(), NOW, UNIX)
    granted(book, BUDGET_LIMIT, 1_000, ttl_ms=1_000)
    assert isinstance(book.admit([BUDGET_LIMIT], Demand(1, 0, 1), NOW + 0.5, UNIX), Admission)
    book.reachable = False
    lapsed = book.admit([BUDGET_LIMIT], Demand(1, 0, 1), NOW + 2, UNIX + 2)
    assert isinstance(lapsed, ApiError)
    assert lapsed.code == "limits_unavailable"


def test_asks_report_committed_and_want_a_slice() -> None:
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    asks = book.asks(NOW, UNIX)
    assert [(a.limit_id, a.committed) for a in asks] == [(RPM.id, 0)]
    assert asks[0].want >= 1
    assert asks[0].window
    assert book.asks(NOW, UNIX) == [], "one ask in flight per lease"


@given(
    demands=st.lists(st.tuples(st.integers(1, 400), st.integers(0, 400)), max_size=40),
    grant=st.integers(0, 5_000),
)
@settings(max_examples=200, deadline=None)
def test_reservations_under_a_lease_never_pass_the_grant(
    demands: list[tuple[int, int]], grant: int
) -> None:
    """Whatever the order of admissions and settlements, while actual <= reserved the
    committed total stays within what the control plane granted."""
    book = LeaseBook()
    book.admit([BUDGET_LIMIT], Demand(), NOW, UNIX)
    granted(book, BUDGET_LIMIT, grant)
    for reserved, actual in demands:
        admission = book.admit([BUDGET_LIMIT], Demand(1, 0, reserved), NOW, UNIX, may_wait=False)
        if isinstance(admission, Admission):
            book.settle(admission, Demand(1, 0, min(actual, reserved)))
        assert book.leases[BUDGET_LIMIT.id].committed <= grant


def test_a_lease_is_renewed_per_slice_never_per_request() -> None:
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    granted(book, RPM, 100)
    asked_at = []
    for n in range(1, 101):
        admission = book.admit([RPM], Demand(), NOW, UNIX)
        assert isinstance(admission, Admission)
        book.settle(admission, Demand())
        if book.asks(NOW, UNIX):
            asked_at.append(n)
            granted(book, RPM, book.leases[RPM.id].granted + 25)
    assert 1 <= len(asked_at) <= 100 // 10, asked_at
    assert asked_at[0] > 50, "no ask while the slice holds most of its room"


MINUTE_LEFT = 20.0  # UNIX is 40 s into its minute


def grant_for(limit: LimitEntry, window: str, units: int, **fields: int) -> control_pb2.LeaseGrant:
    fields = {"ttl_ms": 10_000, "nodes": 1, **fields}
    return control_pb2.LeaseGrant(limit_id=limit.id, window=window, granted=units, **fields)


def test_a_request_counts_in_the_window_it_arrived_in_also_after_waiting() -> None:
    """A request that waited for room at the end of a minute is not counted in the next one
    (its usage record says it arrived in the earlier minute): a hard limit refuses it, with
    Retry-After 1, and the next minute's lease is untouched."""
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    first = book.asks(NOW, UNIX)[0].window
    book.apply([grant_for(RPM, first, 1, remaining=50)], NOW)
    assert isinstance(book.admit([RPM], Demand(), NOW, UNIX), Admission)
    arrived = UNIX + MINUTE_LEFT - 0.1
    assert isinstance(book.admit([RPM], Demand(), NOW + 1, arrived), NeedsLease)
    ask = book.asks(NOW + 1.2, UNIX + MINUTE_LEFT + 0.1)[0]  # the round runs as the minute turns
    assert ask.window > first
    book.apply([grant_for(RPM, ask.window, 10)], NOW + 1.2)

    late = book.admit([RPM], Demand(), NOW + 1.3, arrived, may_wait=False)
    assert isinstance(late, ApiError)
    assert (late.code, late.retry_after) == ("rate_limited", 1)
    assert book.leases[RPM.id].committed == 0
    on_time = book.admit([RPM], Demand(), NOW + 1.3, UNIX + MINUTE_LEFT + 0.2)
    assert isinstance(on_time, Admission)
    assert book.leases[RPM.id].committed == 1


def test_a_request_overtaken_at_the_turn_takes_what_its_windows_grant_still_had() -> None:
    """One that arrived just before the minute turned reaches admission after a later one
    started the next minute: it takes the room the earlier minute's grant still had, no more,
    and leaves the next minute's count alone."""
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    granted(book, RPM, 2)
    after_the_turn = UNIX + MINUTE_LEFT + 0.001
    assert isinstance(book.admit([RPM], Demand(), NOW + 1, after_the_turn), NeedsLease)
    before_the_turn = UNIX + MINUTE_LEFT - 0.001
    outcomes = [book.admit([RPM], Demand(), NOW + 1, before_the_turn) for _ in range(3)]
    assert [isinstance(o, Admission) for o in outcomes] == [True, True, False]
    refused = outcomes[-1]
    assert isinstance(refused, ApiError)
    assert refused.retry_after == 1
    assert book.leases[RPM.id].committed == 0


def test_a_lease_serves_its_window_until_the_calendar_ends_it() -> None:
    """The grant's countdown to the window's end starts when the ask was sent, so it runs out a
    little early; until the calendar's minute ends the node keeps to its grant rather than
    falling back to the share it may take without a lease."""
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    window = book.asks(NOW, UNIX)[0].window
    book.apply([grant_for(RPM, window, 2, nodes=4, window_ends_in_ms=5_000)], NOW)
    later, unix = NOW + 6, UNIX + 6  # past the countdown, 14 s before the minute ends
    admitted = [book.admit([RPM], Demand(), later, unix, may_wait=False) for _ in range(3)]
    assert [isinstance(a, Admission) for a in admitted] == [True, True, False]
    assert book.leases[RPM.id].committed == 2, "the grant, not the share of 25"


def test_a_grant_for_a_window_the_node_has_left_is_ignored() -> None:
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    first = book.asks(NOW, UNIX)[0].window
    next_minute = UNIX + MINUTE_LEFT + 1
    assert isinstance(book.admit([RPM], Demand(), NOW + 21, next_minute), NeedsLease)
    book.apply([grant_for(RPM, first, 50)], NOW)  # the answer to the first minute's ask
    lease = book.leases[RPM.id]
    assert lease.window > first
    assert (lease.granted, lease.asked) == (0, False), "not granted, and free to ask again"


def test_a_limit_whose_period_changes_starts_a_fresh_lease() -> None:
    book = LeaseBook()
    book.admit([RPM], Demand(), NOW, UNIX)
    granted(book, RPM, 100)
    daily = replace(RPM, period="day")
    assert isinstance(book.admit([daily], Demand(), NOW, UNIX), NeedsLease)
    lease = book.leases[RPM.id]
    assert (lease.window, lease.granted) == (windows.window_of("day", "UTC", UNIX)[0], 0)
