from control_plane.core.api.views import PublishingModelViewSet
from control_plane.guardrails.api.serializers import GuardrailPolicySerializer
from control_plane.guardrails.models import GuardrailPolicy


class GuardrailPolicyViewSet(PublishingModelViewSet):
    queryset = GuardrailPolicy.objects.select_related("tenant", "route")
    serializer_class = GuardrailPolicySerializer
    filterset_fields = ["tenant", "route", "enabled"]
