from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from control_plane.core.admin import PublishingAdmin
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Membership, Project, Tenant


class MembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ProjectInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Project
    extra = 0


class LimitInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Limit
    extra = 0
    fields = ["scope", "project", "key", "route", "kind", "period", "amount", "hard", "enabled"]


class GuardrailInline(admin.StackedInline):  # type: ignore[type-arg]
    model = GuardrailPolicy
    extra = 0


@admin.register(Tenant)
class TenantAdmin(PublishingAdmin):
    list_display = ["slug", "name", "active", "allowed_regions", "timeline", "created_at"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline, ProjectInline, LimitInline, GuardrailInline]

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
