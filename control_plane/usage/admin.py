from django.contrib import admin
from django.urls import URLPattern, path

from control_plane.core.admin import ReadOnlyAdmin
from control_plane.core.admin_export import ExportAdminMixin
from control_plane.usage.export import usage_export
from control_plane.usage.models import UsageRecord
from control_plane.usage.spend_admin import spend_page


@admin.register(UsageRecord)
class UsageRecordAdmin(ExportAdminMixin, ReadOnlyAdmin):
    exporter = staticmethod(usage_export)
    change_list_template = "admin/asc/usage_change_list.html"  # the export's, and spend
    list_display = [
        "ts",
        "request_id",
        "tenant_id",
        "route_name",
        "status_code",
        "prompt_tokens",
        "completion_tokens",
        "cost_nano_usd",
        "cache_hit",
        "latency_ms",
    ]
    list_filter = ["status_code", "stream", "cache_hit"]
    search_fields = ["request_id", "route_name"]
    date_hierarchy = "ts"

    def get_urls(self) -> list[URLPattern]:
        spend = path(
            "spend/", self.admin_site.admin_view(spend_page), name="asc_usage_usagerecord_spend"
        )
        return [spend, *super().get_urls()]
