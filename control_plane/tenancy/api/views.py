from control_plane.core.api.views import PublishingModelViewSet
from control_plane.tenancy.api.serializers import TenantSerializer
from control_plane.tenancy.models import Tenant


class TenantViewSet(PublishingModelViewSet):
    queryset = Tenant.objects.all()
    serializer_class = TenantSerializer
    filterset_fields = ["slug", "active"]
