from control_plane.core.api.views import ServiceModelViewSet
from control_plane.core.services import Writes
from control_plane.limits import services
from control_plane.limits.api.serializers import LimitSerializer, ProjectSerializer
from control_plane.limits.models import Limit
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Project


class LimitViewSet(ServiceModelViewSet):
    queryset = Limit.objects.select_related("tenant")
    serializer_class = LimitSerializer
    filterset_fields = ["tenant", "scope", "kind", "key", "project", "route", "enabled"]
    writes = Writes(services.put_limit, services.delete_limit)


class ProjectViewSet(ServiceModelViewSet):
    queryset = Project.objects.select_related("tenant")
    serializer_class = ProjectSerializer
    filterset_fields = ["tenant", "name"]
    writes = Writes(tenancy.put_project, tenancy.delete_project)
