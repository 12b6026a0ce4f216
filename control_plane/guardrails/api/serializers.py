from __future__ import annotations

from typing import Any

from rest_framework import serializers

from control_plane.core.api.serializers import ScopedSerializer
from control_plane.guardrails.models import GuardrailPolicy, policy_problems


class GuardrailPolicySerializer(ScopedSerializer):
    class Meta:
        model = GuardrailPolicy
        fields = [
            "id",
            "tenant",
            "route",
            "name",
            "enabled",
            "on_input",
            "on_output",
            "categories",
            "actions",
            "default_action",
            "custom_patterns",
            "keyword_lists",
            "created_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        candidate = GuardrailPolicy(**{**self._current(), **attrs})
        problems = policy_problems(candidate)
        route, tenant = (
            candidate.route,
            attrs.get("tenant") or getattr(self.instance, "tenant", None),
        )
        if route is not None and tenant is not None and route.tenant_id != tenant.pk:
            problems["route"] = ["the route belongs to another tenant"]
        if problems:
            raise serializers.ValidationError(problems)
        return attrs

    def _current(self) -> dict[str, Any]:
        if self.instance is None:
            return {}
        return {name: getattr(self.instance, name) for name in self.Meta.fields[1:-1]}
