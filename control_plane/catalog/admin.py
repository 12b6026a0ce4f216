from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from control_plane.catalog import services
from control_plane.catalog.models import (
    Model,
    Provider,
    ProviderCredential,
    Route,
    RouteGroup,
    RouteTarget,
)
from control_plane.core.admin import RelatedOnly, ServiceAdmin
from control_plane.core.services import Writes


@admin.register(Provider)
class ProviderAdmin(ServiceAdmin):
    writes = Writes(services.put_provider, services.delete_provider)
    list_display = ["name", "kind", "base_url", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "base_url"]
    actions = ["disable_providers", "enable_providers"]

    @admin.action(description="Disable selected providers", permissions=["change"])
    def disable_providers(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        count = services.set_providers_enabled(queryset, False, actor=request.user)
        self.message_user(request, f"{count} provider(s) disabled.")

    @admin.action(description="Enable selected providers", permissions=["change"])
    def enable_providers(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        count = services.set_providers_enabled(queryset, True, actor=request.user)
        self.message_user(request, f"{count} provider(s) enabled.")


class CredentialForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at run time
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
    )

    class Meta:
        model = ProviderCredential
        fields = ["tenant", "provider", "name"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance._state.adding and not data.get("secret"):
            self.add_error("secret", "A new credential needs its secret.")
        return data


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(ServiceAdmin):
    writes = Writes(services.put_credential, services.delete_credential)
    form = CredentialForm
    list_display = ["name", "tenant", "provider", "secret_hint", "created_at"]
    list_filter = [("provider", RelatedOnly), ("tenant", RelatedOnly)]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = ["secret_hint"]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        secret = form.cleaned_data.get("secret") or None  # empty: keep the current one
        form.instance = services.put_credential(form.instance, actor=request.user, secret=secret)


@admin.register(Model)
class ModelAdmin(ServiceAdmin):
    writes = Writes(services.put_model, services.delete_model)
    list_display = ["provider_model", "provider", "region", "input_price", "output_price"]
    list_filter = [("provider", RelatedOnly), "region"]
    search_fields = ["provider_model"]


class RouteTargetFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]  # not subscriptable at run time
    """Targets must use the route's tenant's credentials, for the model's provider."""

    def clean(self) -> None:
        super().clean()
        try:
            services.check_targets(self.instance, self.specs())
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc

    def specs(self) -> list[services.TargetSpec]:
        """The targets as posted, deleted ones left out."""
        return [
            services.TargetSpec(
                f.cleaned_data["model"],
                f.cleaned_data["credential"],
                f.cleaned_data.get("priority", 0),
                f.cleaned_data.get("weight", 1),
            )
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]


class RouteTargetInline(admin.TabularInline):  # type: ignore[type-arg]  # not subscriptable at run time
    model = RouteTarget
    formset = RouteTargetFormSet
    extra = 1
    min_num = 1


class RouteForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at run time
    class Meta:
        model = Route
        fields = [
            "tenant",
            "name",
            "connect_timeout_ms",
            "first_token_timeout_ms",
            "total_timeout_ms",
            "max_retries",
            "latency_aware",
            "drop_untranslatable",
            "cache_ttl_s",
        ]


@admin.register(Route)
class RouteAdmin(ServiceAdmin):
    """A route is saved with its targets as one, through the service."""

    writes = Writes(services.put_route, services.delete_route)
    form = RouteForm
    inlines = [RouteTargetInline]
    list_display = ["name", "tenant", "created_at"]
    list_filter = [("tenant", RelatedOnly)]
    search_fields = ["name", "tenant__slug"]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        targets = next((f for f in formsets if isinstance(f, RouteTargetFormSet)), None)
        specs = None  # no targets inline shown: they are kept as they are
        if targets is not None:
            targets.save(commit=False)  # writes nothing; notes the changes for the admin's log
            specs = targets.specs()
        form.instance = services.put_route(form.instance, actor=request.user, targets=specs)


class RouteGroupForm(forms.ModelForm):  # type: ignore[type-arg]  # not subscriptable at run time
    class Meta:
        model = RouteGroup
        fields = ["tenant", "name", "routes", "projects"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        tenant = data.get("tenant") or getattr(self.instance, "tenant", None)
        members = [*data.get("routes", ()), *data.get("projects", ())]
        try:
            services.check_group_members(getattr(tenant, "pk", None), members)
        except ValidationError as exc:
            self.add_error("routes", exc.messages)
        return data


@admin.register(RouteGroup)
class RouteGroupAdmin(ServiceAdmin):
    """Model access groups: routes granted as one to keys and to projects' keys."""

    writes = Writes(services.put_route_group, services.delete_route_group)
    form = RouteGroupForm
    list_display = ["name", "tenant", "created_at"]
    list_filter = [("tenant", RelatedOnly)]
    search_fields = ["name", "tenant__slug"]
    filter_horizontal = ["routes", "projects"]
