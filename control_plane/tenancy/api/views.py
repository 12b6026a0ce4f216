from control_plane.core.api.views import PublishingModelViewSet, ScopedModelViewSet
from control_plane.tenancy.api.serializers import MembershipSerializer, TenantSerializer
from control_plane.tenancy.models import Membership, Tenant


class TenantViewSet(PublishingModelViewSet):
    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer
    filterset_fields = ["slug", "active"]


class MembershipViewSet(ScopedModelViewSet):
    """Who holds which role in a tenant. Not part of the policy snapshot: no publish."""

    queryset = Membership.objects.select_related("tenant", "user")
    serializer_class = MembershipSerializer
    filterset_fields = ["tenant", "role", "source"]
