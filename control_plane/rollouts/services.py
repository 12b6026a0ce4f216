"""Running staged rollouts: start one, act on it (advance, pause, resume, abort), let the
nodes' answers and signals drive it (``tick``, ``node_refused``, ``record_health``), and refuse
a second change while one is in flight. The rules are in ``machine``; this module applies
its decisions to the rows, each recorded with who or what made it and why.

An automatic rollback (or an abort) sends every node back to the baseline at once (the
assignment serves it), then restores the baseline's configuration through
``fleet.rollback`` (every app's services), which publishes it as a new version for every node.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from control_plane.core.access import is_platform_admin
from control_plane.core.services import Actor, actor_id
from control_plane.fleet import selectors as fleet
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.rollback import RollbackRefused, rollback_to
from control_plane.rollouts import machine as m
from control_plane.rollouts import metrics
from control_plane.rollouts import selectors as s
from control_plane.rollouts.models import (
    IN_FLIGHT,
    Rollout,
    RolloutDecision,
    RolloutRefusal,
    RolloutSignal,
    RolloutState,
)

log = logging.getLogger(__name__)
SYSTEM = "system"


class RolloutRefused(Exception):
    """The rollout (or the action on it) cannot be done; nothing was written."""


def _in_flight_message(rollout: Rollout) -> str:
    version = s.staged_version(rollout)
    what = f"v{version}" if version else f"the next change after v{rollout.baseline}"
    return (
        f"a staged rollout of {what} is in flight (rollout {rollout.pk}, step {rollout.step + 1} "
        f"of {len(rollout.steps)}, {rollout.state}): let it complete or abort it before "
        "making another change"
    )


def refuse_second_change() -> None:
    """The guard every write runs (``core.publishing``): a change is refused while a staged
    one is published and in flight; the staged change itself (before its publish) passes."""
    rollout = s.in_flight()
    if rollout is not None and s.staged_version(rollout) is not None:
        raise ValidationError(_in_flight_message(rollout))


def _name(actor: Actor) -> str:
    return actor.get_username() if actor is not None and actor.is_authenticated else SYSTEM


def _decide(rollout: Rollout, action: str, reason: str, actor: Actor = None) -> None:
    rollout.reason = reason[:500]
    RolloutDecision.objects.create(
        rollout=rollout,
        action=action,
        step=rollout.step,
        by_id=actor_id(actor),
        by_name=_name(actor),
        reason=reason[:500],
    )
    metrics.decisions.labels(action, "operator" if actor_id(actor) else SYSTEM).inc()
    log.info("rollout %s: %s by %s: %s", rollout.pk, action, _name(actor), reason)


def _only_platform_admins(actor: Actor) -> None:
    if actor is not None and not is_platform_admin(actor):
        raise RolloutRefused("only platform admins run rollouts")


@transaction.atomic
def start(
    *,
    steps: Iterable[int],
    soak_s: int,
    actor: Actor,
    threshold: float = 0.05,
    min_requests: int = 20,
    nodes: Iterable[str] = (),
    region: str = "",
) -> Rollout:
    """Stage the next change: the next version published goes to the canaries of the first
    step, the other nodes keep the latest version now published (the baseline)."""
    _only_platform_admins(actor)
    try:
        plan = m.Plan(tuple(int(x) for x in steps), float(soak_s), float(threshold), min_requests)
    except m.PlanError as exc:
        raise RolloutRefused(str(exc)) from exc
    current = s.in_flight()
    if current is not None:
        raise RolloutRefused(_in_flight_message(current))
    baseline = fleet.latest_version()
    if baseline == 0:
        raise RolloutRefused("nothing is published yet: the first version goes to every node")
    now = timezone.now()
    rollout = Rollout(
        baseline=baseline,
        steps=list(plan.steps),
        soak_s=soak_s,
        threshold=plan.threshold,
        min_requests=min_requests,
        nodes=sorted(set(nodes)),
        region=region,
        step_started_at=now,
        state=RolloutState.RUNNING,
        created_by_id=actor_id(actor),
    )
    try:
        with transaction.atomic():
            rollout.save()
    except IntegrityError as exc:  # another start won the race
        raise RolloutRefused("another rollout was started at the same time") from exc
    where = f"nodes {', '.join(rollout.nodes)}" if rollout.nodes else rollout.region or "any"
    _decide(
        rollout,
        "start",
        f"staged in steps {plan.steps} % with {soak_s} s soak, canaries first from {where}, "
        f"threshold {plan.threshold:.1%} over the baseline v{baseline}",
        actor,
    )
    rollout.save()
    return rollout


def _locked(pk: Any) -> Rollout:
    rollout: Rollout = Rollout.objects.select_for_update().get(pk=pk)
    return rollout


def _begin_step(rollout: Rollout, step: int, now: datetime) -> None:
    rollout.step, rollout.step_started_at = step, now
    share = rollout.steps[step]
    chosen = m.canaries(s.connected_nodes(), s.selector_of(rollout), str(rollout.pk), share)
    rollout.canary_nodes = sorted(chosen | set(rollout.canary_nodes))


def _apply(rollout: Rollout, decision: m.Decision, actor: Actor, now: datetime) -> None:
    if decision.action == m.ADVANCE:
        _begin_step(rollout, rollout.step + 1, now)
        _decide(rollout, m.ADVANCE, decision.reason, actor)
    elif decision.action == m.COMPLETE:
        rollout.state, rollout.finished_at = RolloutState.COMPLETED, now
        _decide(rollout, m.COMPLETE, decision.reason, actor)
    elif decision.action == m.ROLLBACK:
        _undo(rollout, RolloutState.ROLLED_BACK, "rollback", decision.reason, actor, now)
        return
    rollout.save()


def _undo(
    rollout: Rollout, state: str, action: str, reason: str, actor: Actor, now: datetime
) -> None:
    """Every node back to the baseline, then the baseline's configuration restored."""
    rollout.state, rollout.finished_at = state, now
    _decide(rollout, action, reason, actor)
    rollout.save()
    if action == "rollback":
        metrics.automatic_rollbacks.inc()
    if rollout.version is None:
        return  # nothing was published: nothing to restore
    why = f"rollout {rollout.pk} {'rolled back' if action == 'rollback' else 'aborted'}: {reason}"
    try:
        with transaction.atomic():
            rollback_to(rollout.baseline, actor=actor, reason=why[:200])
    except RollbackRefused as exc:
        # The nodes stay on the baseline; the rows keep the bad change until someone fixes it.
        _decide(rollout, "restore_failed", f"configuration not restored: {exc}", actor)
        rollout.save()


@transaction.atomic
def tick(now: datetime | None = None) -> Rollout | None:
    """Drive the rollout in flight one step: take its version once published, then act on
    what the nodes reported. Safe to call from several processes (the row is locked)."""
    current = s.in_flight()
    if current is None:
        return None
    now = now or timezone.now()
    rollout = _locked(current.pk)
    if rollout.state not in IN_FLIGHT:
        return rollout
    if rollout.version is None:
        version = s.staged_version(rollout)
        if version is None:
            return rollout  # the change is not published yet
        rollout.version = version
        _begin_step(rollout, 0, now)
        _decide(rollout, "staged", f"v{version} published: step 1 to {rollout.canary_nodes}")
        rollout.save()
        return rollout
    canaries = frozenset(rollout.canary_nodes)
    seen = m.Observation(
        step=rollout.step,
        step_age_s=(now - rollout.step_started_at).total_seconds(),
        paused=rollout.state == RolloutState.PAUSED,
        canary=s.health(rollout, rollout.version, canaries),
        baseline=s.health(rollout, rollout.baseline),
        refused={n: e for n, e in s.refusals(rollout).items() if n in canaries},
    )
    decision = m.decide(s.plan_of(rollout), seen)
    if decision.action != m.WAIT:
        _apply(rollout, decision, None, now)
    return rollout


def _act(pk: Any, actor: Actor) -> Rollout:
    _only_platform_admins(actor)
    rollout = _locked(pk)
    if rollout.state not in IN_FLIGHT:
        raise RolloutRefused(f"rollout {pk} is {rollout.state}: nothing to do")
    return rollout


@transaction.atomic
def advance(pk: Any, *, actor: Actor) -> Rollout:
    """The operator's word: the next step now (or complete after the last one)."""
    rollout = _act(pk, actor)
    if rollout.version is None:
        raise RolloutRefused("the staged change is not published yet: nothing to advance")
    _apply(rollout, m.next_step(s.plan_of(rollout), rollout.step), actor, timezone.now())
    return rollout


@transaction.atomic
def pause(pk: Any, *, actor: Actor, reason: str = "") -> Rollout:
    """Hold the current step (automatic rollbacks still happen)."""
    rollout = _act(pk, actor)
    rollout.state = RolloutState.PAUSED
    _decide(rollout, "pause", reason or "paused by an operator", actor)
    rollout.save()
    return rollout


@transaction.atomic
def resume(pk: Any, *, actor: Actor) -> Rollout:
    rollout = _act(pk, actor)
    rollout.state = RolloutState.RUNNING
    _decide(rollout, "resume", "resumed by an operator", actor)
    rollout.save()
    return rollout


@transaction.atomic
def abort(pk: Any, *, actor: Actor, reason: str = "") -> Rollout:
    """Every node back to the baseline, and its configuration restored."""
    rollout = _act(pk, actor)
    _undo(
        rollout, RolloutState.ABORTED, "abort", reason or "aborted by an operator", actor,
        timezone.now(),
    )  # fmt: skip
    return rollout


def node_refused(node_id: str, digest: str, error: str) -> None:
    """A node NACKed the snapshot with hash ``digest``: a canary refusing the staged version
    rolls the rollout back at once."""
    rollout = s.in_flight()
    if rollout is None or rollout.version is None:
        return
    staged = PolicySnapshot.objects.filter(version=rollout.version, hash=digest).exists()
    if staged and node_id in rollout.canary_nodes:
        RolloutRefusal.objects.create(rollout=rollout, node_id=node_id, error=error[:2000])
        tick()


def record_health(node_id: str, signals: Iterable[Any]) -> None:
    """Add a usage batch's health signals (``asc.v1.VersionHealth``) to the rollout in
    flight, for its baseline and staged versions."""
    rollout = s.in_flight()
    if rollout is None or rollout.version is None:
        return
    for signal in signals:
        if signal.version not in (rollout.baseline, rollout.version) or not signal.requests:
            continue
        counts = {name: getattr(signal, name) for name in s.COUNTERS}
        row, created = RolloutSignal.objects.get_or_create(
            rollout=rollout, node_id=node_id, version=signal.version, defaults=counts
        )
        if not created:
            RolloutSignal.objects.filter(pk=row.pk).update(
                **{name: F(name) + value for name, value in counts.items()}
            )
