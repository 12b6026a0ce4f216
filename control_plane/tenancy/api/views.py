from control_plane.core.api.views import ServiceModelViewSet
from control_plane.core.services import Writes
from control_plane.tenancy import services
from control_plane.tenancy.api.serializers import MembershipSerializer, TenantSerializer
from control_plane.tenancy.models import Membership, Tenant


class TenantViewSet(ServiceModelViewSet):
    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer
    filterset_fields = ["slug", "active"]
    writes = Writes(services.put_tenant, services.delete_tenant)


class MembershipViewSet(ServiceModelViewSet):
    """Who holds which role in a tenant. Not part of the policy snapshot: no publish."""

    queryset = Membership.objects.select_related("tenant", "user")
    serializer_class = MembershipSerializer
    filterset_fields = ["tenant", "role", "source"]
    writes = Writes(services.put_membership, services.delete_membership)
