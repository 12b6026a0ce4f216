"""Reads for rollouts: the one in flight, which version each node is to be served, and the
signals of each group of nodes."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from control_plane.fleet import selectors as fleet
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.rollouts import machine as m
from control_plane.rollouts.models import (
    IN_FLIGHT,
    Rollout,
    RolloutDecision,
    RolloutSignal,
    RolloutState,
)

COUNTERS = ("requests", "server_errors", "upstream_errors", "guardrail_blocks", "policy_denials")


def in_flight() -> Rollout | None:
    rollout: Rollout | None = Rollout.objects.filter(state__in=IN_FLIGHT).first()
    return rollout


def in_flight_for(user: object) -> Rollout | None:
    """The rollout in flight, when the user may see rollouts (the console's front page)."""
    rollout: Rollout | None = Rollout.objects.restrict(user).filter(state__in=IN_FLIGHT).first()
    return rollout


def staged_version(rollout: Rollout) -> int | None:
    """The version the rollout stages: the first one published after its baseline."""
    if rollout.version is not None:
        return rollout.version
    first = PolicySnapshot.objects.filter(version__gt=rollout.baseline).order_by("version")
    version = first.values_list("version", flat=True).first()
    return int(version) if version is not None else None


def plan_of(rollout: Rollout) -> m.Plan:
    return m.Plan(
        tuple(rollout.steps), float(rollout.soak_s), rollout.threshold, rollout.min_requests
    )


def selector_of(rollout: Rollout) -> m.Selector:
    return m.Selector(tuple(rollout.nodes), rollout.region)


def connected_nodes() -> list[m.Node]:
    return [m.Node(n.node_id, n.region) for n in DataPlaneNode.objects.filter(connected=True)]


@dataclass(frozen=True)
class Assignment:
    """Which version each node is to be served while a rollout holds the fleet: ``version`` to
    the ``canaries`` (to every node when ``everyone``), ``baseline`` to the others. ``version``
    None: every node is served the baseline (the change is not published yet, or was rolled
    back and its undoing is not published yet)."""

    baseline: int
    version: int | None
    canaries: frozenset[str]
    everyone: bool

    def version_for(self, node_id: str) -> int:
        if self.version is not None and (self.everyone or node_id in self.canaries):
            return self.version
        return self.baseline


def assignment(latest: int | None = None) -> Assignment | None:
    """None: no rollout holds the fleet, every node is served the latest version. ``latest``:
    the latest version as the caller holds it (default: the database's); an undone rollout
    holds the fleet on its baseline until a version past the staged one is that latest."""
    rollout: Rollout | None = Rollout.objects.first()
    if rollout is None:
        return None
    if rollout.state in IN_FLIGHT:
        version = rollout.version
        everyone = rollout.steps[rollout.step] >= 100
        return Assignment(rollout.baseline, version, frozenset(rollout.canary_nodes), everyone)
    undone = rollout.state in (RolloutState.ROLLED_BACK, RolloutState.ABORTED)
    current = fleet.latest_version() if latest is None else latest
    if undone and rollout.version is not None and current <= rollout.version:
        return Assignment(rollout.baseline, None, frozenset(), False)
    return None


def health(rollout: Rollout, version: int, nodes: frozenset[str] | None = None) -> m.Health:
    """What ``version`` served during the rollout, on ``nodes`` (None: every node)."""
    rows = RolloutSignal.objects.filter(rollout=rollout, version=version)
    if nodes is not None:
        rows = rows.filter(node_id__in=list(nodes))
    sums = rows.aggregate(**{name: Sum(name) for name in COUNTERS})
    return m.Health(*(int(sums[name] or 0) for name in COUNTERS))


def refusals(rollout: Rollout) -> dict[str, str]:
    return {r.node_id: r.error for r in rollout.refusals.all()}


@dataclass(frozen=True)
class NodeView:
    node_id: str
    region: str
    connected: bool
    applied_version: int
    canary: bool
    last_error: str
    serves: int  # the version the rollout has it served (the baseline once undone)


@dataclass(frozen=True)
class Status:
    """A rollout as the API and the admin show it: which nodes are on which version, the
    signals of each group side by side, and every decision with who made it and why."""

    rollout: Rollout
    version: int | None
    nodes: list[NodeView]
    canary: m.Health
    baseline: m.Health
    decisions: list[RolloutDecision]


def status(rollout: Rollout) -> Status:
    version = staged_version(rollout)
    canaries = frozenset(rollout.canary_nodes)
    everyone = rollout.state == RolloutState.COMPLETED or rollout.steps[rollout.step] >= 100
    undone = rollout.state in (RolloutState.ROLLED_BACK, RolloutState.ABORTED)
    staged = Assignment(rollout.baseline, None if undone else version, canaries, everyone)
    nodes = [
        NodeView(n.node_id, n.region, n.connected, n.applied_version, n.node_id in canaries,
                 n.last_error, staged.version_for(n.node_id))
        for n in DataPlaneNode.objects.order_by("node_id")
    ]  # fmt: skip
    return Status(
        rollout,
        version,
        nodes,
        health(rollout, version, canaries) if version else m.Health(),
        health(rollout, rollout.baseline),
        list(rollout.decisions.select_related("by")),
    )
