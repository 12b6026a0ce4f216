from control_plane.catalog.api import serializers as s
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteGroup
from control_plane.catalog.services import delete_route
from control_plane.core.api.views import PublishingModelViewSet, ScopedModelViewSet


class ProviderViewSet(PublishingModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = s.ProviderSerializer
    filterset_fields = ["name", "kind", "enabled"]


class ProviderCredentialViewSet(PublishingModelViewSet):
    queryset = ProviderCredential.objects.select_related("tenant", "provider")
    serializer_class = s.ProviderCredentialSerializer
    filterset_fields = ["tenant", "provider", "name"]


class ModelViewSet(PublishingModelViewSet):
    queryset = Model.objects.select_related("provider")
    serializer_class = s.ModelSerializer
    filterset_fields = ["provider", "provider_model", "region"]


class RouteViewSet(ScopedModelViewSet):
    """Writes go through catalog.services (which publish); the serializer calls them."""

    queryset = Route.objects.select_related("tenant").prefetch_related("targets")
    serializer_class = s.RouteSerializer
    filterset_fields = ["tenant", "name"]

    def perform_destroy(self, instance: Route) -> None:
        delete_route(instance)


class RouteGroupViewSet(PublishingModelViewSet):
    queryset = RouteGroup.objects.select_related("tenant").prefetch_related("routes", "projects")
    serializer_class = s.RouteGroupSerializer
    filterset_fields = ["tenant", "name"]
