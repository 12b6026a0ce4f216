from control_plane.core.api.serializers import ScopedSerializer
from control_plane.sso.models import SsoGroup


class SsoGroupSerializer(ScopedSerializer):
    class Meta:
        model = SsoGroup
        fields = ["id", "tenant", "group", "role", "created_at"]
