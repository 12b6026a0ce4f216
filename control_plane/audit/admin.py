from __future__ import annotations

from collections.abc import Iterable

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse

from control_plane.audit import export
from control_plane.audit.models import AuditRecord
from control_plane.core.admin import ReadOnlyAdmin


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = [
        "ts",
        "chain_id",
        "seq",
        "decision",
        "reason",
        "route_name",
        "subject",
        "categories",
    ]
    list_filter = ["decision", "reason", "guardrail_action"]
    search_fields = ["request_id", "subject", "chain_id"]
    date_hierarchy = "ts"
    exclude = ["payload"]
    actions = ["export_jsonl", "export_csv"]

    @admin.action(description="Export selected as JSONL", permissions=["view"])
    def export_jsonl(
        self, request: HttpRequest, queryset: QuerySet[AuditRecord]
    ) -> StreamingHttpResponse:
        return _download(
            export.jsonl(queryset.order_by("ts", "chain_id", "seq").iterator()), "jsonl"
        )

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[AuditRecord]
    ) -> StreamingHttpResponse:
        return _download(
            export.csv_lines(queryset.order_by("ts", "chain_id", "seq").iterator()), "csv"
        )


def _download(lines: Iterable[str], fmt: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        lines, content_type="text/csv" if fmt == "csv" else "application/x-ndjson"
    )
    response["Content-Disposition"] = f'attachment; filename="audit.{fmt}"'
    return response
