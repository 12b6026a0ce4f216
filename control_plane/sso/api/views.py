from control_plane.core.api.views import ScopedModelViewSet
from control_plane.sso.api.serializers import SsoGroupSerializer
from control_plane.sso.models import SsoGroup


class SsoGroupViewSet(ScopedModelViewSet):
    """Which identity-provider groups grant which role in a tenant (applied at SSO login)."""

    queryset = SsoGroup.objects.select_related("tenant")
    serializer_class = SsoGroupSerializer
    filterset_fields = ["tenant", "group", "role"]
