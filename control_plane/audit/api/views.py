from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import action
from rest_framework.request import Request

from control_plane.audit.api.serializers import AuditRecordSerializer
from control_plane.audit.export import audit_export
from control_plane.audit.filters import AuditRecordFilterSet
from control_plane.audit.models import AuditRecord
from control_plane.core.api import export
from control_plane.core.api.pagination import IngestionCursorPagination
from control_plane.core.api.views import ScopedReadOnlyViewSet

CHAINS = (
    "`chains`: for each chain, the records exported, its head and the signed checkpoint "
    "covering its last exported record"
)


class AuditRecordViewSet(export.ExportMixin, ScopedReadOnlyViewSet):
    """Audit records, newest ingested first, read with a cursor (``IngestionCursorPagination``)."""

    queryset = AuditRecord.objects.defer("payload")
    serializer_class = AuditRecordSerializer
    filterset_class = AuditRecordFilterSet
    pagination_class = IngestionCursorPagination

    @extend_schema(**export.schema("audit", CHAINS))
    @action(detail=False, methods=["get"], renderer_classes=export.RENDERERS)
    def export(self, request: Request) -> StreamingHttpResponse:
        return self.export_response(request, audit_export)
