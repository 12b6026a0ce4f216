from __future__ import annotations

from dataclasses import asdict
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from control_plane.rollouts import selectors
from control_plane.rollouts.models import Rollout, RolloutDecision


class HealthSerializer(serializers.Serializer[Any]):
    requests = serializers.IntegerField()
    server_errors = serializers.IntegerField()
    upstream_errors = serializers.IntegerField()
    guardrail_blocks = serializers.IntegerField()
    policy_denials = serializers.IntegerField()
    error_rate = serializers.FloatField()
    denial_rate = serializers.FloatField()


class NodeSerializer(serializers.Serializer[Any]):
    node_id = serializers.CharField()
    region = serializers.CharField()
    connected = serializers.BooleanField()
    applied_version = serializers.IntegerField()
    canary = serializers.BooleanField()
    last_error = serializers.CharField()
    serves = serializers.IntegerField()


class DecisionSerializer(serializers.ModelSerializer[RolloutDecision]):
    class Meta:
        model = RolloutDecision
        fields = ["at", "action", "step", "by_name", "reason"]


class RolloutSerializer(serializers.ModelSerializer[Rollout]):
    """A rollout with its status: nodes by version, each group's signals, its decisions."""

    version = serializers.SerializerMethodField()
    nodes = serializers.SerializerMethodField()
    canary_health = serializers.SerializerMethodField()
    baseline_health = serializers.SerializerMethodField()
    decisions = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = [
            "id",
            "state",
            "baseline",
            "version",
            "steps",
            "step",
            "soak_s",
            "threshold",
            "min_requests",
            "canary_nodes",
            "region",
            "step_started_at",
            "reason",
            "created_at",
            "created_by",
            "finished_at",
            "nodes",
            "canary_health",
            "baseline_health",
            "decisions",
        ]

    def _status(self, rollout: Rollout) -> selectors.Status:
        cached: dict[Any, selectors.Status] = self.__dict__.setdefault("_statuses", {})
        if rollout.pk not in cached:
            cached[rollout.pk] = selectors.status(rollout)
        return cached[rollout.pk]

    @extend_schema_field(OpenApiTypes.INT)
    def get_version(self, rollout: Rollout) -> int | None:
        return self._status(rollout).version

    @extend_schema_field(NodeSerializer(many=True))
    def get_nodes(self, rollout: Rollout) -> list[dict[str, Any]]:
        return [asdict(n) for n in self._status(rollout).nodes]

    def _health(self, health: Any) -> dict[str, Any]:
        return {
            **asdict(health),
            "error_rate": health.error_rate,
            "denial_rate": health.denial_rate,
        }

    @extend_schema_field(HealthSerializer)
    def get_canary_health(self, rollout: Rollout) -> dict[str, Any]:
        return self._health(self._status(rollout).canary)

    @extend_schema_field(HealthSerializer)
    def get_baseline_health(self, rollout: Rollout) -> dict[str, Any]:
        return self._health(self._status(rollout).baseline)

    @extend_schema_field(DecisionSerializer(many=True))
    def get_decisions(self, rollout: Rollout) -> list[Any]:
        return DecisionSerializer(self._status(rollout).decisions, many=True).data  # type: ignore[return-value]  # a ReturnList


class StartSerializer(serializers.Serializer[Any]):
    """Stage the next change: shares of the fleet per step, the soak of each, and the canaries
    (named nodes, or a region; neither: any node)."""

    steps = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=100))
    soak_s = serializers.IntegerField(min_value=0, max_value=7 * 86400)
    threshold = serializers.FloatField(min_value=0, max_value=1, default=0.05)
    min_requests = serializers.IntegerField(min_value=1, default=20)
    nodes = serializers.ListField(child=serializers.CharField(max_length=200), default=list)
    region = serializers.CharField(max_length=64, default="", allow_blank=True)


class ReasonSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=400, default="", allow_blank=True)
