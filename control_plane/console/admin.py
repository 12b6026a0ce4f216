"""The tenant's page is where a tenant is run: its members and SSO groups, projects, budgets
and rate limits and guardrails (edited in place), and its routes with their targets,
credentials and keys (listed, each a link to its own page).

It shows rows of most apps, so it lives in the app on top; the admin URL stays the tenancy
app's (``/admin/asc_tenancy/tenant/``), as the ModelAdmin is registered for its model."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from control_plane.catalog.models import ProviderCredential, Route
from control_plane.config.services import export_yaml
from control_plane.console.timeline import tenant_timeline
from control_plane.core.access import CHANGE, is_platform_admin
from control_plane.core.admin import LinkInline, ScopedInline, ServiceAdmin
from control_plane.core.services import Writes
from control_plane.guardrails import services as guardrails
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys.models import VirtualKey
from control_plane.limits import services as limits
from control_plane.limits.models import Limit
from control_plane.sso import services as sso
from control_plane.sso.models import SsoGroup
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Membership, Project, Tenant
from control_plane.tenancy.selectors import nameable_users


class MembershipForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at run time
    """The member by user name: a tenant admin names a person, and is never shown the list
    of every user."""

    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_active=True),
        to_field_name="username",
        widget=forms.TextInput,
        help_text="user name",
    )

    class Meta:
        model = Membership
        fields = ["user", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:  # shown as the name typed in, not as the user's id
            self.initial["user"] = self.instance.user.get_username()


class MembershipInline(ScopedInline):
    model = Membership
    writes = Writes(tenancy.put_membership, tenancy.delete_membership)
    form = MembershipForm
    fields = ["user", "role", "source"]
    readonly_fields = ["source"]

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        """Only users the admin may name: another tenant's member reads as an unknown name,
        as in the API (``tenancy.selectors.nameable_users``)."""
        users = nameable_users(request.user)

        class Form(MembershipForm):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.fields["user"].queryset = users  # type: ignore[attr-defined]  # a ModelChoiceField

        kwargs["form"] = Form
        return super().get_formset(request, obj, **kwargs)


class SsoGroupInline(ScopedInline):
    model = SsoGroup
    writes = Writes(sso.put_sso_group, sso.delete_sso_group)
    fields = ["group", "role"]
    verbose_name_plural = "SSO groups (identity-provider groups granting a role here)"


class ProjectInline(ScopedInline):
    model = Project
    writes = Writes(tenancy.put_project, tenancy.delete_project)


class LimitInline(ScopedInline):
    model = Limit
    writes = Writes(limits.put_limit, limits.delete_limit)
    fields = [
        "scope",
        "project",
        "key",
        "route",
        "tag",
        "kind",
        "period",
        "amount",
        "hard",
        "enabled",
    ]
    verbose_name_plural = "Budgets and rate limits"


class GuardrailInline(ScopedInline, admin.StackedInline):  # type: ignore[type-arg]  # the generic parameters come from ScopedInline
    model = GuardrailPolicy
    writes = Writes(guardrails.put_guardrail_policy, guardrails.delete_guardrail_policy)
    template = "admin/edit_inline/stacked.html"


class RouteInline(LinkInline):
    model = Route
    fields = ["name", "targets_summary"]
    readonly_fields = ["name", "targets_summary"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).prefetch_related("targets__model")

    @admin.display(description="Targets (priority, weight)")
    def targets_summary(self, route: Route) -> str:
        return format_html_join(
            ", ", "{} ({}, {})", ((t.model, t.priority, t.weight) for t in route.targets.all())
        )


class CredentialInline(LinkInline):
    model = ProviderCredential
    fields = ["name", "provider", "secret_hint"]
    readonly_fields = ["name", "provider", "secret_hint"]


class KeyInline(LinkInline):
    model = VirtualKey
    fields = ["name", "key_hint", "project", "expires_at", "revoked_at"]
    readonly_fields = ["name", "key_hint", "project", "expires_at", "revoked_at"]


@admin.register(Tenant)
class TenantAdmin(ServiceAdmin):
    writes = Writes(tenancy.put_tenant, tenancy.delete_tenant)
    list_display = ["slug", "name", "active", "allowed_regions", "timeline", "created_at"]
    list_filter = ["active"]
    search_fields = ["slug", "name"]
    inlines = [
        MembershipInline,
        SsoGroupInline,
        ProjectInline,
        LimitInline,
        GuardrailInline,
        RouteInline,
        CredentialInline,
        KeyInline,
    ]
    actions = ["export_configuration"]

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """A platform admin deleting a tenant deletes all of it, keys and records included,
        although keys are otherwise revoked rather than deleted."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if is_platform_admin(request.user):
            perms_needed = set()
        return deleted, counts, perms_needed, protected

    @admin.action(
        description="Export selected tenants' configuration (YAML)", permissions=["change"]
    )
    def export_configuration(
        self, request: HttpRequest, queryset: QuerySet[Tenant]
    ) -> HttpResponse:
        slugs = list(queryset.restrict(request.user, CHANGE).values_list("slug", flat=True))  # type: ignore[attr-defined]  # restrict() comes from the scoped manager
        response = HttpResponse(export_yaml(slugs), content_type="application/yaml")
        name = slugs[0] if len(slugs) == 1 else "tenants"
        response["Content-Disposition"] = f'attachment; filename="{name}-config.yaml"'
        return response

    @admin.display(description="Timeline")
    def timeline(self, tenant: Tenant) -> str:
        url = reverse("admin:asc_tenancy_tenant_timeline", args=[tenant.pk])
        return format_html('<a href="{}">timeline</a>', url)

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<uuid:tenant_id>/timeline/",
                self.admin_site.admin_view(tenant_timeline),
                name="asc_tenancy_tenant_timeline",
            )
        ]
        return custom + super().get_urls()
