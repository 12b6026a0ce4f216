from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from control_plane.core.admin import PublishingAdmin
from control_plane.tenancy.models import Membership, Tenant


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(PublishingAdmin):
    list_display = ["slug", "name", "active", "allowed_regions", "timeline", "created_at"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]

    @admin.display(description="Timeline")
    def timeline(self, tenant: Tenant) -> str:
        url = reverse("admin:asc_tenancy_tenant_timeline", args=[tenant.pk])
        return format_html('<a href="{}">timeline</a>', url)

    def get_urls(self) -> list:  # type: ignore[type-arg]
        from django.urls import path

        from control_plane.usage.admin_views import tenant_timeline

        custom = [
            path(
                "<uuid:tenant_id>/timeline/",
                self.admin_site.admin_view(tenant_timeline),
                name="asc_tenancy_tenant_timeline",
            )
        ]
        return custom + super().get_urls()
