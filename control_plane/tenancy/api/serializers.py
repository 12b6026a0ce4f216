from rest_framework import serializers

from control_plane.tenancy.models import Tenant


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
            "created_at",
            "updated_at",
        ]
