from __future__ import annotations

from typing import Any

from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from control_plane.core.api.views import ScopedModelViewSet
from control_plane.keys import services
from control_plane.keys.api.serializers import VirtualKeySerializer
from control_plane.keys.models import VirtualKey


class VirtualKeyViewSet(ScopedModelViewSet):
    """Keys are revoked, not deleted: usage and audit keep referring to them."""

    queryset = VirtualKey.objects.select_related("tenant").prefetch_related(
        "routes", "route_groups"
    )
    serializer_class = VirtualKeySerializer
    filterset_fields = ["tenant", "name"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]

    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: Any = None) -> Response:
        key = self.get_object()
        services.revoke_keys([key], actor=request.user)
        key.refresh_from_db()
        return Response(self.get_serializer(key).data)
