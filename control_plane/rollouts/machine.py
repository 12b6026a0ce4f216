"""A staged rollout as pure functions: which nodes are canaries at each step, and what to do
next given what the nodes reported. No Django, no gRPC, no clock (times are passed in), so
every rule is tested without a database or a stream.

A rollout takes version ``version`` from the ``baseline`` version to the fleet in steps (shares
of the fleet, e.g. 5, 25, 100 %). At each step the canaries are the first nodes of a fixed
order: the nodes the operator named, or the nodes of the chosen region, come first, then every
other node, each group in an order drawn from the rollout's id (stable while the fleet is, and
different from one rollout to the next, so the same nodes are not always first). A step holds
at least one node, and a larger step holds every node of a smaller one.

Decisions, in this order:
- a canary node refused the version (NACK): roll back;
- the canaries' error rate (5xx) or denial rate (guardrail blocks and policy denials) exceeds
  the baseline's by more than the rollout's threshold, once the canaries served at least
  ``min_requests`` requests: roll back;
- paused: wait for the operator;
- the step has soaked (``soak_s`` since it began): advance, or complete after the last step;
- otherwise wait.
The baseline is what the previous version served during the rollout, on every node still on
it (or on it before it became a canary).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

WAIT: Final = "wait"
ADVANCE: Final = "advance"
COMPLETE: Final = "complete"
ROLLBACK: Final = "rollback"
Action = Literal["wait", "advance", "complete", "rollback"]


class PlanError(ValueError):
    """A rollout that cannot run as asked."""


@dataclass(frozen=True)
class Plan:
    steps: tuple[int, ...]  # shares of the fleet in percent, rising, the last one 100
    soak_s: float
    threshold: float  # how much higher a canary rate may be than the baseline's (0.05 = 5 points)
    min_requests: int = 20  # canary requests needed before their rates are judged

    def __post_init__(self) -> None:
        problems = plan_problems(self)
        if problems:
            raise PlanError("; ".join(problems))


def plan_problems(plan: Plan) -> list[str]:
    problems = []
    steps = plan.steps
    if not steps or any(not 0 < s <= 100 for s in steps):
        problems.append("steps are shares of the fleet between 1 and 100 (percent)")
    elif list(steps) != sorted(set(steps)) or steps[-1] != 100:
        problems.append("steps rise strictly and the last one is 100")
    if not (math.isfinite(plan.soak_s) and 0 <= plan.soak_s <= 7 * 86400):
        problems.append("the soak time is between 0 s and a week")
    if not (math.isfinite(plan.threshold) and 0 <= plan.threshold <= 1):
        problems.append("the threshold is a share between 0 and 1")
    if plan.min_requests < 1:
        problems.append("at least one canary request is needed to judge a step")
    return problems


@dataclass(frozen=True)
class Node:
    id: str
    region: str = ""


@dataclass(frozen=True)
class Selector:
    """Which nodes go first: those ``named``, or those of ``region``; empty: any."""

    named: tuple[str, ...] = ()
    region: str = ""

    def first(self, node: Node) -> bool:
        if self.named:
            return node.id in self.named
        return bool(self.region) and node.region == self.region


def order(nodes: Iterable[Node], selector: Selector, seed: str) -> list[Node]:
    def rank(node: Node) -> tuple[bool, str]:
        digest = hashlib.sha256(f"{seed}\0{node.id}".encode()).hexdigest()
        return (not selector.first(node), digest)

    return sorted(nodes, key=rank)


def canaries(nodes: Sequence[Node], selector: Selector, seed: str, share: int) -> frozenset[str]:
    """The ids of the nodes that serve the new version at a step of ``share`` percent."""
    if not nodes:
        return frozenset()
    count = max(1, math.ceil(len(nodes) * share / 100))
    return frozenset(n.id for n in order(nodes, selector, seed)[:count])


@dataclass(frozen=True)
class Health:
    """What some nodes served on one version: requests, and how many of them were answered
    with a 5xx, failed upstream, were blocked by a guardrail or denied by policy."""

    requests: int = 0
    server_errors: int = 0
    upstream_errors: int = 0
    guardrail_blocks: int = 0
    policy_denials: int = 0

    @property
    def error_rate(self) -> float:
        return self.server_errors / self.requests if self.requests else 0.0

    @property
    def denial_rate(self) -> float:
        denied = self.guardrail_blocks + self.policy_denials
        return denied / self.requests if self.requests else 0.0

    def __add__(self, other: Health) -> Health:
        return Health(
            self.requests + other.requests,
            self.server_errors + other.server_errors,
            self.upstream_errors + other.upstream_errors,
            self.guardrail_blocks + other.guardrail_blocks,
            self.policy_denials + other.policy_denials,
        )


@dataclass(frozen=True)
class Observation:
    step: int  # index into the plan's steps
    step_age_s: float  # seconds since the step began
    paused: bool
    canary: Health
    baseline: Health
    refused: dict[str, str] = field(default_factory=dict)  # canary node id -> its NACK


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(plan: Plan, seen: Observation) -> Decision:
    if seen.refused:
        node, error = sorted(seen.refused.items())[0]
        return Decision(ROLLBACK, f"node {node} refused the version: {error}"[:500])
    verdict = _compare(plan, seen.canary, seen.baseline)
    if verdict:
        return Decision(ROLLBACK, verdict)
    if seen.paused:
        return Decision(WAIT, "paused by an operator")
    if seen.step_age_s < plan.soak_s:
        left = plan.soak_s - seen.step_age_s
        return Decision(WAIT, f"step {seen.step + 1} soaking, {left:.0f} s left")
    if seen.step + 1 >= len(plan.steps):
        return Decision(COMPLETE, f"the last step soaked {plan.soak_s:.0f} s: every node is on it")
    return Decision(
        ADVANCE, f"step {seen.step + 1} soaked {plan.soak_s:.0f} s with healthy canaries"
    )


def _compare(plan: Plan, canary: Health, baseline: Health) -> str:
    if canary.requests < plan.min_requests:
        return ""
    for name, new, old in (
        ("error rate", canary.error_rate, baseline.error_rate),
        ("denial rate", canary.denial_rate, baseline.denial_rate),
    ):
        if new - old > plan.threshold:
            return (
                f"canary {name} {new:.1%} over {canary.requests} requests exceeds the "
                f"baseline's {old:.1%} over {baseline.requests} by more than {plan.threshold:.1%}"
            )
    return ""


def next_step(plan: Plan, step: int) -> Decision:
    """The operator's word: advance now (or complete after the last step)."""
    if step + 1 >= len(plan.steps):
        return Decision(COMPLETE, "completed by an operator")
    return Decision(ADVANCE, f"advanced to {plan.steps[step + 1]}% by an operator")
