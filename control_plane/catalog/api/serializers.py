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

    def save(self, **kwargs: Any) -> ProviderCredential:
        secret = self.validated_data.pop("secret", None)
        instance = self.instance or ProviderCredential()
        for name, value in self.validated_data.items():
            setattr(instance, name, value)
        if secret is not None:
            services.set_credential_secret(instance, secret)
        instance.full_clean(exclude=["encrypted_secret", "sealed_secret"])
        instance.save()
        self.instance = instance
        return instance


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
            "created_at",
            "updated_at",
        ]

    def validate_targets(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not value:
            raise serializers.ValidationError("a route needs at least one target")
        return value

    def save(self, **kwargs: Any) -> Route:
        data = dict(self.validated_data)
        targets = data.pop("targets", None)
        route = self.instance or Route()
        for name, value in data.items():
            setattr(route, name, value)
        specs = None if targets is None else [services.TargetSpec(**t) for t in targets]
        self.instance = services.save_route(route, specs)
        return self.instance


class RouteGroupSerializer(ScopedSerializer):
    """A model access group: routes granted as one to keys (``route_groups`` on a key) and to
    every key of the ``projects`` listed."""

    class Meta:
        model = RouteGroup
        fields = ["id", "tenant", "name", "routes", "projects", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        tenant = attrs.get("tenant") or getattr(self.instance, "tenant", None)
        members = [*attrs.get("routes", ()), *attrs.get("projects", ())]
        if any(m.tenant_id != getattr(tenant, "pk", None) for m in members):
            raise serializers.ValidationError(
                {"routes": "routes and projects must be of the group's tenant"}
            )
        return attrs
