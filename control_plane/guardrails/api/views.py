from control_plane.core.api.views import ServiceModelViewSet
from control_plane.core.services import Writes
from control_plane.guardrails import services
from control_plane.guardrails.api.serializers import GuardrailPolicySerializer
from control_plane.guardrails.models import GuardrailPolicy


class GuardrailPolicyViewSet(ServiceModelViewSet):
    queryset = GuardrailPolicy.objects.select_related("tenant", "route")
    serializer_class = GuardrailPolicySerializer
    filterset_fields = ["tenant", "route", "enabled"]
    writes = Writes(services.put_guardrail_policy, services.delete_guardrail_policy)
