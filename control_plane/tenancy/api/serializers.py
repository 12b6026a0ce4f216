from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from control_plane.core.api.serializers import ScopedSerializer
from control_plane.tenancy.models import Membership, Tenant
from control_plane.tenancy.selectors import nameable_users


class TenantSerializer(serializers.ModelSerializer[Tenant]):
    allowed_regions = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False
    )

    class Meta:
        model = Tenant
        fields = [
            "id",
            "slug",
            "name",
            "active",
            "allowed_regions",
            "audit_retention_days",
            "allowed_tags",
            "drop_unknown_tags",
            "trace_prompts",
            "created_at",
            "updated_at",
        ]


class MembershipSerializer(ScopedSerializer):
    """A user (by user name) and their role in a tenant. ``source`` says whether SSO manages
    it (rewritten at each SSO login) or it was granted here."""

    user = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.filter(is_active=True)
    )

    class Meta:
        model = Membership
        fields = ["id", "tenant", "user", "role", "source"]
        read_only_fields = ["source"]

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        request = self.context.get("request")
        fields["user"].queryset = nameable_users(getattr(request, "user", None))
        return fields
