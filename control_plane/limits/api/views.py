from control_plane.core.api.views import PublishingModelViewSet
from control_plane.limits.api.serializers import LimitSerializer, ProjectSerializer
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Project


class LimitViewSet(PublishingModelViewSet):
    queryset = Limit.objects.select_related("tenant")
    serializer_class = LimitSerializer
    filterset_fields = ["tenant", "scope", "kind", "key", "project", "route", "enabled"]


class ProjectViewSet(PublishingModelViewSet):
    queryset = Project.objects.select_related("tenant")
    serializer_class = ProjectSerializer
    filterset_fields = ["tenant", "name"]
