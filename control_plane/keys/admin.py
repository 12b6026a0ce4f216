from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from control_plane.core.access import CHANGE
from control_plane.core.admin import RelatedOnly, ScopedAdmin, ServiceAdmin
from control_plane.core.services import Writes
from control_plane.keys import services
from control_plane.keys.models import IdentityProvider, VirtualKey


class TenantRoutesForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at run time
    """A row granting routes (a key, an identity provider): the routes are of its tenant."""

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        if tenant is not None:
            try:
                services.check_routes(tenant, data.get("routes", []))
            except forms.ValidationError as exc:
                self.add_error("routes", exc.messages)
        return data


class VirtualKeyForm(TenantRoutesForm):
    class Meta:
        model = VirtualKey
        fields = [
            "tenant",
            "name",
            "routes",
            "expires_at",
            "route_groups",
            "project",
            "max_parallel",
            "max_body_bytes",
            "max_tokens",
            "asserts_end_user",
            "tags",
        ]


@admin.register(VirtualKey)
class VirtualKeyAdmin(ScopedAdmin):
    """Creating a key shows its secret once, in the confirmation message."""

    form = VirtualKeyForm
    list_display = ["name", "tenant", "key_hint", "expires_at", "revoked_at", "created_at"]
    list_filter = [("tenant", RelatedOnly), ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_hint", "tenant__slug"]
    filter_horizontal = ["routes"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "key_hint", "revoked_at"] if obj else ["key_hint", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: VirtualKey, form: Any, change: bool) -> None:
        pass  # saved with its routes in save_related, through the service

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        data = form.cleaned_data
        routes = list(data.get("routes", []))
        if change:
            services.update_key(
                form.instance,
                name=data["name"],
                routes=routes,
                expires_at=data.get("expires_at"),
                actor=request.user,
                **services.key_settings(data),
            )
            return
        key, secret = services.create_key(
            data["tenant"],
            data["name"],
            routes,
            data.get("expires_at"),
            actor=request.user,
            **services.key_settings(data),
        )
        form.instance = key
        messages.warning(request, f"The key's secret, shown only this once: {secret}. Copy it now.")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are revoked, not deleted

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[VirtualKey]) -> None:
        keys = queryset.restrict(request.user, CHANGE)  # type: ignore[attr-defined]  # restrict() comes from the scoped manager
        count = services.revoke_keys(keys, actor=request.user)
        self.message_user(request, f"{count} key(s) revoked.")


@admin.register(IdentityProvider)
class IdentityProviderAdmin(ServiceAdmin):
    writes = Writes(services.put_identity_provider, services.delete_identity_provider)
    form = TenantRoutesForm
    list_display = ["name", "tenant", "issuer", "audience"]
    list_filter = [("tenant", RelatedOnly)]
    search_fields = ["name", "issuer", "tenant__slug"]
    filter_horizontal = ["routes"]
