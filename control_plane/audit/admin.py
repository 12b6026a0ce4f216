from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse

from control_plane.audit.export import audit_export
from control_plane.audit.models import AuditRecord
from control_plane.core.admin import ReadOnlyAdmin
from control_plane.core.admin_export import CHANGE_LIST_TEMPLATE, ExportAdminMixin, download
from control_plane.core.export import CSV, NDJSON


@admin.register(AuditRecord)
class AuditRecordAdmin(ExportAdminMixin, ReadOnlyAdmin):
    exporter = staticmethod(audit_export)
    change_list_template = CHANGE_LIST_TEMPLATE
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

    @admin.action(description="Export selected as NDJSON", permissions=["view"])
    def export_jsonl(
        self, request: HttpRequest, queryset: QuerySet[AuditRecord]
    ) -> StreamingHttpResponse:
        return download(audit_export(queryset, {"selected": True}), NDJSON)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[AuditRecord]
    ) -> StreamingHttpResponse:
        return download(audit_export(queryset, {"selected": True}), CSV)
