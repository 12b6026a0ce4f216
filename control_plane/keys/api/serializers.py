from __future__ import annotations

from typing import Any

from rest_framework import serializers

from control_plane.catalog.models import Route, RouteGroup
from control_plane.core.api.serializers import ScopedSerializer
from control_plane.keys import services
from control_plane.keys.models import VirtualKey


class VirtualKeySerializer(ScopedSerializer):
    """On creation the response carries ``secret``, once; it is never stored or shown again."""

    routes = serializers.PrimaryKeyRelatedField(many=True, queryset=Route.objects.all())
    route_groups = serializers.PrimaryKeyRelatedField(
        many=True, queryset=RouteGroup.objects.all(), required=False
    )
    revoked = serializers.SerializerMethodField()

    class Meta:
        model = VirtualKey
        fields = [
            "id",
            "tenant",
            "name",
            "key_hint",
            "routes",
            "route_groups",
            "expires_at",
            "project",
            "max_parallel",
            "max_body_bytes",
            "max_tokens",
            "asserts_end_user",
            "tags",
            "revoked_at",
            "revoked",
            "created_at",
        ]
        read_only_fields = ["key_hint", "revoked_at"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.instance is not None:  # a key never moves to another tenant
            fields["tenant"].read_only = True
        return fields

    def get_revoked(self, key: VirtualKey) -> bool:
        return key.revoked_at is not None

    def create(self, validated_data: dict[str, Any]) -> VirtualKey:
        key, secret = services.create_key(
            validated_data["tenant"],
            validated_data["name"],
            list(validated_data.get("routes", [])),
            validated_data.get("expires_at"),
            actor=self.context["request"].user,
            **services.key_settings(validated_data),
        )
        key.secret = secret  # type: ignore[attr-defined]  # returned once by to_representation
        return key

    def update(self, key: VirtualKey, validated_data: dict[str, Any]) -> VirtualKey:
        return services.update_key(
            key,
            name=validated_data.get("name", key.name),
            routes=list(validated_data.get("routes", key.routes.all())),
            expires_at=validated_data.get("expires_at", key.expires_at),
            actor=self.context["request"].user,
            **services.key_settings(validated_data),
        )

    def to_representation(self, instance: VirtualKey) -> dict[str, Any]:
        data = super().to_representation(instance)
        secret = getattr(instance, "secret", None)
        if secret is not None:
            data["secret"] = secret
        return data
