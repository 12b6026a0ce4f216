from __future__ import annotations

from typing import Any

import django_filters
from django.http import StreamingHttpResponse
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from control_plane.audit import export
from control_plane.audit.api.serializers import AuditRecordSerializer
from control_plane.audit.models import AuditRecord
from control_plane.core.api.views import ScopedReadOnlyViewSet


class AuditRecordFilterSet(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="ts", lookup_expr="lt")

    class Meta:
        model = AuditRecord
        fields = ["tenant", "key", "route", "decision", "reason", "request_id", "chain_id"]


class AuditRecordViewSet(ScopedReadOnlyViewSet):
    queryset = AuditRecord.objects.defer("payload")
    serializer_class = AuditRecordSerializer
    filterset_class = AuditRecordFilterSet

    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        """``?tenant=<id>&since=&until=&as=jsonl|csv``: every matching record, streamed.
        (Not ``format``: DRF reserves it for content negotiation.)"""
        fmt = request.query_params.get("as", "jsonl")
        if fmt not in ("jsonl", "csv"):
            raise ValidationError({"as": "jsonl or csv"})
        if not request.query_params.get("tenant"):
            raise ValidationError({"tenant": "an export is for one tenant"})
        rows = self.filter_queryset(self.get_queryset()).order_by("ts", "chain_id", "seq")
        lines: Any = (
            export.jsonl(rows.iterator()) if fmt == "jsonl" else export.csv_lines(rows.iterator())
        )
        content_type = "application/x-ndjson" if fmt == "jsonl" else "text/csv"
        response = StreamingHttpResponse(lines, content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
        return response
