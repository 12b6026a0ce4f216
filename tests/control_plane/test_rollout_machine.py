"""The staged rollout's rules as pure functions: plans, canary choice and decisions, without
Django or gRPC."""

from __future__ import annotations

import pytest

from control_plane.rollouts import machine as m

PLAN = m.Plan((5, 25, 100), soak_s=60, threshold=0.05, min_requests=20)
HEALTHY = m.Health(requests=100, server_errors=1, guardrail_blocks=1)


def seen(**kw: object) -> m.Observation:
    base: dict[str, object] = {
        "step": 0,
        "step_age_s": 0.0,
        "paused": False,
        "canary": HEALTHY,
        "baseline": HEALTHY,
    }
    return m.Observation(**{**base, **kw})  # type: ignore[arg-type]  # test values by name


@pytest.mark.parametrize(
    ("steps", "soak", "threshold", "problem"),
    [
        ((), 60, 0.05, "steps are shares"),
        ((5, 0, 100), 60, 0.05, "steps are shares"),
        ((25, 5, 100), 60, 0.05, "rise strictly"),
        ((5, 25), 60, 0.05, "the last one is 100"),
        ((5, 100), -1, 0.05, "soak time"),
        ((5, 100), float("nan"), 0.05, "soak time"),
        ((5, 100), 60, 2.0, "threshold"),
    ],
)
def test_a_plan_that_cannot_run_is_refused(
    steps: tuple[int, ...], soak: float, threshold: float, problem: str
) -> None:
    with pytest.raises(m.PlanError, match=problem):
        m.Plan(steps, soak, threshold)


NODES = [m.Node(f"n{i}", "eu" if i < 4 else "us") for i in range(20)]


def test_each_step_takes_its_share_and_keeps_the_earlier_canaries() -> None:
    every = m.Selector()
    five, quarter, half = (m.canaries(NODES, every, "r1", p) for p in (5, 25, 50))
    assert (len(five), len(quarter), len(half)) == (1, 5, 10)
    assert five <= quarter <= half
    assert m.canaries(NODES, every, "r1", 100) == {n.id for n in NODES}
    assert m.canaries(NODES[:3], every, "r1", 1) != frozenset(), "at least one node"
    assert m.canaries([], every, "r1", 50) == frozenset()


def test_the_order_depends_on_the_rollout_not_on_the_listing() -> None:
    every = m.Selector()
    assert m.canaries(NODES, every, "r1", 25) == m.canaries(NODES[::-1], every, "r1", 25)
    firsts = {next(iter(m.canaries(NODES, every, f"r{i}", 5))) for i in range(20)}
    assert len(firsts) > 1, "different rollouts start on different nodes"


def test_named_nodes_or_a_region_go_first() -> None:
    named = m.Selector(named=("n7", "n9"))
    assert m.canaries(NODES, named, "r1", 10) == {"n7", "n9"}
    assert {"n7", "n9"} <= m.canaries(NODES, named, "r1", 25)
    eu = m.Selector(region="eu")
    assert m.canaries(NODES, eu, "r1", 20) == {"n0", "n1", "n2", "n3"}


def test_a_refusal_rolls_back_before_anything_else() -> None:
    decision = m.decide(PLAN, seen(refused={"n3": "bad regex"}, paused=True, step_age_s=999))
    assert decision.action == m.ROLLBACK
    assert decision.reason == "node n3 refused the version: bad regex"


@pytest.mark.parametrize(
    ("canary", "why"),
    [
        (m.Health(requests=100, server_errors=20), "canary error rate 20.0%"),
        (m.Health(requests=100, guardrail_blocks=100), "canary denial rate 100.0%"),
        (m.Health(requests=100, policy_denials=30), "canary denial rate 30.0%"),
    ],
)
def test_canaries_worse_than_the_baseline_by_more_than_the_threshold_roll_back(
    canary: m.Health, why: str
) -> None:
    decision = m.decide(PLAN, seen(canary=canary, paused=True))
    assert decision.action == m.ROLLBACK
    assert decision.reason.startswith(why)
    assert "baseline's 1.0% over 100" in decision.reason


def test_within_the_threshold_or_too_few_requests_is_no_verdict() -> None:
    within = m.Health(requests=100, server_errors=5, guardrail_blocks=5)
    assert m.decide(PLAN, seen(canary=within)).action == m.WAIT
    few = m.Health(requests=19, server_errors=19)
    assert m.decide(PLAN, seen(canary=few)).action == m.WAIT
    assert m.decide(PLAN, seen(canary=m.Health(requests=20, server_errors=20))).action == (
        m.ROLLBACK
    )


def test_the_baseline_of_a_noisy_fleet_raises_the_bar() -> None:
    noisy = m.Health(requests=1000, server_errors=100)
    canary = m.Health(requests=100, server_errors=14)
    assert m.decide(PLAN, seen(canary=canary, baseline=noisy)).action == m.WAIT
    canary = m.Health(requests=100, server_errors=16)
    assert m.decide(PLAN, seen(canary=canary, baseline=noisy)).action == m.ROLLBACK


def test_soak_advance_complete_and_pause() -> None:
    assert m.decide(PLAN, seen(step_age_s=59)).action == m.WAIT
    advance = m.decide(PLAN, seen(step_age_s=60))
    assert advance.action == m.ADVANCE
    assert "step 1 soaked 60 s" in advance.reason
    assert m.decide(PLAN, seen(step=2, step_age_s=60)).action == m.COMPLETE
    assert m.decide(PLAN, seen(step_age_s=600, paused=True)).action == m.WAIT


def test_the_operators_word() -> None:
    assert m.next_step(PLAN, 0).action == m.ADVANCE
    assert m.next_step(PLAN, 0).reason == "advanced to 25% by an operator"
    assert m.next_step(PLAN, 2).action == m.COMPLETE
