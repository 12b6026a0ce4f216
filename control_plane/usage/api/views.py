from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request

from control_plane.core.api import export
from control_plane.core.api.pagination import IngestionCursorPagination
from control_plane.core.api.views import ScopedReadOnlyViewSet
from control_plane.usage.api.serializers import UsageRecordSerializer
from control_plane.usage.export import usage_export
from control_plane.usage.filters import UsageRecordFilterSet
from control_plane.usage.models import UsageRecord


class UsageRecordViewSet(export.ExportMixin, ScopedReadOnlyViewSet):
    """Usage records, newest ingested first, read with a cursor (``IngestionCursorPagination``)."""

    queryset = UsageRecord.objects.all()
    serializer_class = UsageRecordSerializer
    filterset_class = UsageRecordFilterSet
    pagination_class = IngestionCursorPagination

    @extend_schema(**export.schema("usage", "`totals` (tokens and cost, in nano-USD)"))
    @action(detail=False, methods=["get"], renderer_classes=export.RENDERERS)
    def export(self, request: Request) -> StreamingHttpResponse:
        return self.export_response(request, usage_export)
