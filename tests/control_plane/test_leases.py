"""The lease ledger: grants never let a window's claims pass the limit, whatever the nodes
ask, and a silent node's unused slice comes back after the TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.limits.models import LeaseHolding, LeaseWindow, Limit
from control_plane.limits.services import LEASE_TTL_S, Others, acquire, decide, others_of
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

NOW = 1_795_000_000.0


def ask(limit: Limit, want: int, committed: int = 0, window: str = "") -> control_pb2.LeaseAsk:
    return control_pb2.LeaseAsk(
        limit_id=str(limit.pk), window=window, committed=committed, want=want
    )


@pytest.fixture
def budget() -> Limit:
    a = factories.stack("tenant-a")
    return Limit.objects.create(
        tenant=a["tenant"], scope="tenant", kind="budget", period="none", amount=Decimal("1")
    )


@given(
    amount=st.integers(0, 10**9),
    claimed=st.integers(0, 6 * 10**9),
    granted=st.integers(0, 10**9),
    committed=st.integers(0, 10**9),
    want=st.integers(-10, 10**9),
)
@settings(max_examples=300, deadline=None)
def test_decide_never_grants_past_what_the_others_leave(
    amount: int,
    claimed: int,
    granted: int,
    committed: int,
    want: int,
) -> None:
    new = decide(amount, claimed, granted, committed, want)
    room = amount - claimed
    assert new >= committed, "what a node already committed is never taken back"
    assert new <= max(committed, granted + max(want, 0))
    if committed <= room:
        assert new <= room, "a grant never takes the claims past the limit"


def test_the_other_nodes_claims_are_granted_while_alive_and_committed_once_silent(
    budget: Limit,
) -> None:
    window = LeaseWindow.objects.create(limit=budget, window="all")
    seen = datetime.fromtimestamp(NOW, UTC)
    holdings = [  # node, granted, committed, seconds since it was last seen
        ("granted-more", 50, 10, 1.0),
        ("committed-more", 5, 20, 0.0),
        ("just-alive", 7, 3, LEASE_TTL_S),
        ("silent", 70, 30, LEASE_TTL_S + 1),
        ("asking", 1000, 900, 0.0),
    ]
    for node, granted, committed, ago in holdings:
        LeaseHolding.objects.create(
            lease_window=window,
            node_id=node,
            granted=granted,
            committed=committed,
            last_seen=seen - timedelta(seconds=ago),
        )
    others = others_of(window, "asking", seen - timedelta(seconds=LEASE_TTL_S))
    assert others == Others(claimed=50 + 20 + 7 + 30, committed=10 + 20 + 3 + 30, alive=3)
    assert others_of(window, "nobody-else", seen) == Others(
        claimed=10 + 20 + 3 + 30 + 1000, committed=10 + 20 + 3 + 30 + 900, alive=2
    ), "alive since ``seen``: the two seen then"


def test_grants_to_many_nodes_add_up_to_the_limit_at_most(budget: Limit) -> None:
    total = budget.units()
    grants = [acquire(f"dp-{i}", [ask(budget, total // 3)], NOW)[0] for i in range(5)]
    assert sum(g.granted for g in grants) == total, "the first three take it all"
    assert [g.granted for g in grants[3:]] == [total - 3 * (total // 3), 0]
    assert grants[-1].remaining == 0
    assert grants[-1].nodes == 5
    assert grants[0].window == "all"
    assert grants[0].ttl_ms == int(LEASE_TTL_S * 1000)


def test_a_silent_nodes_unused_slice_comes_back_after_the_ttl(budget: Limit) -> None:
    total = budget.units()
    first = acquire("dp-1", [ask(budget, total)], NOW)[0]
    assert first.granted == total
    acquire("dp-1", [ask(budget, 0, committed=total // 4, window="all")], NOW)
    assert acquire("dp-2", [ask(budget, total)], NOW + 1)[0].granted == 0
    later = acquire("dp-2", [ask(budget, total)], NOW + LEASE_TTL_S + 1)[0]
    assert later.granted == total - total // 4, "only what dp-1 committed stays claimed"


def test_lowering_the_limit_shrinks_grants_to_what_is_committed(budget: Limit) -> None:
    total = budget.units()
    acquire("dp-1", [ask(budget, total)], NOW)
    budget.amount = Decimal("0.25")
    budget.save()
    shrunk = acquire("dp-1", [ask(budget, 0, committed=total // 10, window="all")], NOW + 1)[0]
    assert shrunk.granted == budget.units()
    budget.amount = Decimal("0.01")
    budget.save()
    floor = acquire("dp-1", [ask(budget, 0, committed=total // 10, window="all")], NOW + 2)[0]
    assert floor.granted == total // 10, "never below what the node already committed"


def test_unknown_and_disabled_limits_grant_nothing(budget: Limit) -> None:
    budget.enabled = False
    budget.save()
    missing = control_pb2.LeaseAsk(limit_id="not-a-uuid", want=5)
    grants = acquire("dp-1", [ask(budget, 5), missing], NOW)
    assert [(g.window, g.granted) for g in grants] == [("", 0), ("", 0)]


def test_rate_limit_windows_are_minutes(budget: Limit) -> None:
    rpm = Limit.objects.create(
        tenant=budget.tenant, scope="tenant", kind="requests", period="minute", amount=60
    )
    grant = acquire("dp-1", [ask(rpm, 100)], NOW)[0]
    assert grant.granted == 60
    assert 0 < grant.window_ends_in_ms <= 60_000
    next_minute = acquire("dp-1", [ask(rpm, 10, committed=60, window=grant.window)], NOW + 60)[0]
    assert next_minute.window != grant.window
    assert next_minute.granted == 10, "a new window starts from nothing"
