from __future__ import annotations

from typing import Any

from rest_framework import serializers

from control_plane.catalog import services
from control_plane.catalog.models import (
    Model,
    Provider,
    ProviderCredential,
    Route,
    RouteGroup,
    RouteTarget,
)
from control_plane.core.api.serializers import ScopedSerializer


class ProviderSerializer(ScopedSerializer):
    options = serializers.DictField(child=serializers.CharField(), required=False)

    class Meta:
        model = Provider
        fields = ["id", "name", "kind", "base_url", "options", "enabled", "created_at"]


class ProviderCredentialSerializer(ScopedSerializer):
    """``secret`` is write-only: encrypted on the way in, never shown back (only the hint)."""

    secret = serializers.CharField(write_only=True, trim_whitespace=True, max_length=8192)

    class Meta:
        model = ProviderCredential
        fields = ["id", "tenant", "provider", "name", "secret", "secret_hint", "created_at"]
        read_only_fields = ["secret_hint"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.instance is not None:  # updating: a new secret is optional
            fields["secret"].required = False
        return fields


class ModelSerializer(ScopedSerializer):
    class Meta:
        model = Model
        fields = [
            "id",
            "provider",
            "provider_model",
            "region",
            "input_price",
            "output_price",
            "cached_input_price",
            "created_at",
        ]


class RouteTargetSerializer(ScopedSerializer):
    class Meta:
        model = RouteTarget
        fields = ["model", "credential", "priority", "weight"]


class RouteSerializer(ScopedSerializer):
    targets = RouteTargetSerializer(many=True)

    class Meta:
        model = Route
        fields = [
            "id",
            "tenant",
            "name",
            "targets",
            "connect_timeout_ms",
            "first_token_timeout_ms",
            "total_timeout_ms",
            "max_retries",
            "latency_aware",
            "drop_untranslatable",
            "cache_ttl_s",
            "created_at",
            "updated_at",
        ]

    def validate_targets(self, value: list[dict[str, Any]]) -> list[services.TargetSpec]:
        if not value:
            raise serializers.ValidationError("a route needs at least one target")
        return [services.TargetSpec(**t) for t in value]


class RouteGroupSerializer(ScopedSerializer):
    """A model access group: routes granted as one to keys (``route_groups`` on a key) and to
    every key of the ``projects`` listed (of the group's tenant: catalog.services checks)."""

    class Meta:
        model = RouteGroup
        fields = ["id", "tenant", "name", "routes", "projects", "created_at"]
