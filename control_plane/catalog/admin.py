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
from control_plane.core.admin import PublishingAdmin, RelatedOnly


@admin.register(Provider)
class ProviderAdmin(PublishingAdmin):
    list_display = ["name", "kind", "base_url", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "base_url"]
    actions = ["disable_providers", "enable_providers"]

    @admin.action(description="Disable selected providers", permissions=["change"])
    def disable_providers(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        count = services.set_providers_enabled(queryset, False, request.user.pk)
        self.message_user(request, f"{count} provider(s) disabled.")

    @admin.action(description="Enable selected providers", permissions=["change"])
    def enable_providers(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        count = services.set_providers_enabled(queryset, True, request.user.pk)
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
        if not self.instance.pk and not data.get("secret"):
            self.add_error("secret", "A new credential needs its secret.")
        return data

    def save(self, commit: bool = True) -> ProviderCredential:
        credential: ProviderCredential = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            services.set_credential_secret(credential, self.cleaned_data["secret"])
        if commit:
            credential.save()
        return credential


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(PublishingAdmin):
    form = CredentialForm
    list_display = ["name", "tenant", "provider", "secret_hint", "created_at"]
    list_filter = [("provider", RelatedOnly), ("tenant", RelatedOnly)]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = ["secret_hint"]


@admin.register(Model)
class ModelAdmin(PublishingAdmin):
    list_display = ["provider_model", "provider", "region", "input_price", "output_price"]
    list_filter = [("provider", RelatedOnly), "region"]
    search_fields = ["provider_model"]


class RouteTargetFormSet(forms.BaseInlineFormSet):  # type: ignore[type-arg]  # not subscriptable at run time
    """Targets must use the route's tenant's credentials, for the model's provider."""

    def clean(self) -> None:
        super().clean()
        specs = [
            services.TargetSpec(
                f.cleaned_data["model"],
                f.cleaned_data["credential"],
                f.cleaned_data.get("priority", 0),
                f.cleaned_data.get("weight", 1),
            )
            for f in self.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        try:
            services.check_targets(self.instance, specs)
        except ValidationError as exc:
            raise ValidationError(exc.messages) from exc


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
        ]


@admin.register(Route)
class RouteAdmin(PublishingAdmin):
    form = RouteForm
    inlines = [RouteTargetInline]
    list_display = ["name", "tenant", "created_at"]
    list_filter = [("tenant", RelatedOnly)]
    search_fields = ["name", "tenant__slug"]


@admin.register(RouteGroup)
class RouteGroupAdmin(PublishingAdmin):
    """Model access groups: routes granted as one to keys and to projects' keys."""

    list_display = ["name", "tenant", "created_at"]
    list_filter = [("tenant", RelatedOnly)]
    search_fields = ["name", "tenant__slug"]
    filter_horizontal = ["routes", "projects"]
