from control_plane.catalog import services
from control_plane.catalog.api import serializers as s
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteGroup
from control_plane.core.api.views import ServiceModelViewSet
from control_plane.core.services import Writes


class ProviderViewSet(ServiceModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = s.ProviderSerializer
    filterset_fields = ["name", "kind", "enabled"]
    writes = Writes(services.put_provider, services.delete_provider)


class ProviderCredentialViewSet(ServiceModelViewSet):
    queryset = ProviderCredential.objects.select_related("tenant", "provider")
    serializer_class = s.ProviderCredentialSerializer
    filterset_fields = ["tenant", "provider", "name"]
    writes = Writes(services.put_credential, services.delete_credential)


class ModelViewSet(ServiceModelViewSet):
    queryset = Model.objects.select_related("provider")
    serializer_class = s.ModelSerializer
    filterset_fields = ["provider", "provider_model", "region"]
    writes = Writes(services.put_model, services.delete_model)


class RouteViewSet(ServiceModelViewSet):
    queryset = Route.objects.select_related("tenant").prefetch_related("targets")
    serializer_class = s.RouteSerializer
    filterset_fields = ["tenant", "name"]
    writes = Writes(services.put_route, services.delete_route)


class RouteGroupViewSet(ServiceModelViewSet):
    queryset = RouteGroup.objects.select_related("tenant").prefetch_related("routes", "projects")
    serializer_class = s.RouteGroupSerializer
    filterset_fields = ["tenant", "name"]
    writes = Writes(services.put_route_group, services.delete_route_group)
