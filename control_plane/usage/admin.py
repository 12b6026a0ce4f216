from django.contrib import admin

from control_plane.core.admin import ReadOnlyAdmin
from control_plane.core.admin_export import CHANGE_LIST_TEMPLATE, ExportAdminMixin
from control_plane.usage.export import usage_export
from control_plane.usage.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(ExportAdminMixin, ReadOnlyAdmin):
    exporter = staticmethod(usage_export)
    change_list_template = CHANGE_LIST_TEMPLATE
    list_display = [
        "ts",
        "request_id",
        "tenant_id",
        "route_name",
        "status_code",
        "prompt_tokens",
        "completion_tokens",
        "cost_nano_usd",
        "latency_ms",
    ]
    list_filter = ["status_code", "stream"]
    search_fields = ["request_id", "route_name"]
    date_hierarchy = "ts"
