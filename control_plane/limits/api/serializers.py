from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from control_plane.core.api.serializers import ScopedSerializer
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Project


class LimitSerializer(ScopedSerializer):
    class Meta:
        model = Limit
        fields = [
            "id",
            "tenant",
            "scope",
            "project",
            "key",
            "route",
            "tag",
            "kind",
            "period",
            "time_zone",
            "amount",
            "hard",
            "alert_thresholds",
            "enabled",
            "created_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """The model's own rules (subject matches scope and tenant, period, time zone)."""
        current = (
            {f: getattr(self.instance, f) for f in self.Meta.fields[1:-1]} if self.instance else {}
        )
        candidate = Limit(**{**current, **attrs})
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        attrs["period"] = candidate.period
        return attrs


class ProjectSerializer(ScopedSerializer):
    class Meta:
        model = Project
        fields = ["id", "tenant", "name", "tags", "created_at"]
