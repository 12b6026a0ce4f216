from __future__ import annotations

from django.contrib import admin

from control_plane.core.admin import PublishingAdmin, RelatedOnly
from control_plane.guardrails.models import GuardrailPolicy


@admin.register(GuardrailPolicy)
class GuardrailPolicyAdmin(PublishingAdmin):
    list_display = ["name", "tenant", "route", "enabled", "on_input", "on_output", "default_action"]
    list_filter = [("tenant", RelatedOnly), "enabled", "default_action"]
    search_fields = ["name", "tenant__slug", "route__name"]
