"""A staged rollout of one snapshot version, what each step did, and what the nodes reported.

Rows are the rollout's record: every decision (start, advance, pause, resume, automatic
rollback, abort, completion) is a ``RolloutDecision`` naming who or what made it and why.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from control_plane.core.models import ScopedQuerySet


class RolloutState(models.TextChoices):
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    ABORTED = "aborted"


IN_FLIGHT = (RolloutState.RUNNING, RolloutState.PAUSED)


class RolloutQuerySet(ScopedQuerySet):
    tenant_path = None  # platform-wide: every tenant's traffic


class Rollout(models.Model):
    """``version``: the staged version, null until the change is published (the first version
    after ``baseline``); ``baseline``: the last good version, which every other node keeps."""

    baseline = models.PositiveBigIntegerField()
    version = models.PositiveBigIntegerField(null=True, blank=True)
    steps = models.JSONField()  # shares of the fleet in percent, e.g. [5, 25, 100]
    soak_s = models.PositiveIntegerField()
    threshold = models.FloatField(default=0.05)
    min_requests = models.PositiveIntegerField(default=20)
    nodes = models.JSONField(default=list, blank=True)  # named canary nodes
    region = models.CharField(max_length=64, blank=True)  # or a canary region
    step = models.PositiveSmallIntegerField(default=0)
    # The nodes serving ``version`` at this step, chosen when the step began (machine.canaries).
    canary_nodes = models.JSONField(default=list, blank=True)
    step_started_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=RolloutState.choices)
    reason = models.CharField(max_length=500, blank=True)  # the latest decision's
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RolloutQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Two changes in flight at once are refused, even by concurrent starts.
            models.UniqueConstraint(
                fields=["state"],
                condition=models.Q(state__in=["running", "paused"]),
                name="one_rollout_in_flight",
            )
        ]

    def __str__(self) -> str:
        return f"rollout {self.pk} of v{self.version or '?'} over v{self.baseline}"


class RolloutDecision(models.Model):
    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="decisions")
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=16)
    step = models.PositiveSmallIntegerField()
    # Who: a user, or "system" for the automatic decisions.
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    by_name = models.CharField(max_length=150)
    reason = models.CharField(max_length=500)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.by_name}: {self.reason}"


class RolloutSignal(models.Model):
    """What one node served on one version during a rollout, summed over its usage batches."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="signals")
    node_id = models.CharField(max_length=200)
    version = models.PositiveBigIntegerField()
    requests = models.PositiveBigIntegerField(default=0)
    server_errors = models.PositiveBigIntegerField(default=0)
    upstream_errors = models.PositiveBigIntegerField(default=0)
    guardrail_blocks = models.PositiveBigIntegerField(default=0)
    policy_denials = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["rollout", "node_id", "version"], name="one_signal_per_node_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.node_id} on v{self.version}"


class RolloutRefusal(models.Model):
    """A node's NACK of the staged version."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="refusals")
    node_id = models.CharField(max_length=200)
    error = models.TextField()
    at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.node_id}: {self.error[:80]}"
