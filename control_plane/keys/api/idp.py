from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from control_plane.catalog.models import Route
from control_plane.core.api.serializers import ScopedSerializer
from control_plane.core.api.views import ServiceModelViewSet
from control_plane.core.services import Writes
from control_plane.keys import services
from control_plane.keys.models import IdentityProvider


class IdentityProviderSerializer(ScopedSerializer):
    routes = serializers.PrimaryKeyRelatedField(many=True, queryset=Route.objects.all())

    class Meta:
        model = IdentityProvider
        fields = [
            "id",
            "tenant",
            "name",
            "issuer",
            "audience",
            "jwks",
            "subject_claim",
            "roles_claim",
            "routes",
            "role_routes",
            "created_at",
        ]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        tenant = attrs.get("tenant") or getattr(self.instance, "tenant", None)
        if any(r.tenant_id != getattr(tenant, "pk", None) for r in attrs.get("routes", [])):
            raise serializers.ValidationError({"routes": "routes of another tenant"})
        fields = {k: v for k, v in attrs.items() if k not in ("routes", "tenant")}
        candidate = IdentityProvider(tenant=tenant, **{**_existing(self.instance), **fields})
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return attrs


def _existing(instance: IdentityProvider | None) -> dict[str, Any]:
    if instance is None:
        return {}
    names = ["name", "issuer", "audience", "jwks", "subject_claim", "roles_claim", "role_routes"]
    return {n: getattr(instance, n) for n in names}


class IdentityProviderViewSet(ServiceModelViewSet):
    queryset = IdentityProvider.objects.select_related("tenant").prefetch_related("routes")
    serializer_class = IdentityProviderSerializer
    filterset_fields = ["tenant", "issuer"]
    writes = Writes(services.put_identity_provider, services.delete_identity_provider)
