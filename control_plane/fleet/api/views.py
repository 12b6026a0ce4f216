from __future__ import annotations

from rest_framework import status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from control_plane.core.api.pagination import CursorPagination
from control_plane.core.api.views import ScopedReadOnlyViewSet
from control_plane.fleet.api.serializers import DataPlaneNodeSerializer, PolicySnapshotSerializer
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.fleet.services import publish_snapshot


class SnapshotCursorPagination(CursorPagination):
    """Newest version first. A version is taken as the latest committed one plus one, and a
    second publisher waits on the primary key until the first commits, so versions become
    visible in order: no horizon is needed."""

    ordering = ("-version",)


class NodeCursorPagination(CursorPagination):
    """By node id: every node known when a read begins is listed once; one that first
    connects during the read is listed if its id sorts after the read's position."""

    ordering = ("node_id",)


class PolicySnapshotViewSet(ScopedReadOnlyViewSet):
    queryset = PolicySnapshot.objects.defer("payload")
    serializer_class = PolicySnapshotSerializer
    filterset_fields = ["version", "hash"]
    pagination_class = SnapshotCursorPagination

    @action(detail=False, methods=["post"])
    def publish(self, request: Request) -> Response:
        """Publish now (normally every change publishes by itself)."""
        published = publish_snapshot("published through the API", request.user.pk)
        code = status.HTTP_201_CREATED if published.created else status.HTTP_200_OK
        return Response(self.get_serializer(published.snapshot).data, status=code)


class DataPlaneNodeViewSet(ScopedReadOnlyViewSet):
    queryset = DataPlaneNode.objects.all()
    serializer_class = DataPlaneNodeSerializer
    filterset_fields = ["node_id", "region", "connected"]
    pagination_class = NodeCursorPagination
