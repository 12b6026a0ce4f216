from control_plane.core.api.views import ServiceModelViewSet
from control_plane.core.services import Writes
from control_plane.sso import services
from control_plane.sso.api.serializers import SsoGroupSerializer
from control_plane.sso.models import SsoGroup


class SsoGroupViewSet(ServiceModelViewSet):
    """Which identity-provider groups grant which role in a tenant (applied at SSO login)."""

    queryset = SsoGroup.objects.select_related("tenant")
    serializer_class = SsoGroupSerializer
    filterset_fields = ["tenant", "group", "role"]
    writes = Writes(services.put_sso_group, services.delete_sso_group)
