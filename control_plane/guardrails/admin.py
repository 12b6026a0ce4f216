from __future__ import annotations

from django.contrib import admin

from control_plane.core.admin import RelatedOnly, ServiceAdmin
from control_plane.core.services import Writes
from control_plane.guardrails import services
from control_plane.guardrails.models import GuardrailPolicy


@admin.register(GuardrailPolicy)
class GuardrailPolicyAdmin(ServiceAdmin):
    writes = Writes(services.put_guardrail_policy, services.delete_guardrail_policy)
    list_display = ["name", "tenant", "route", "enabled", "on_input", "on_output", "default_action"]
    list_filter = [("tenant", RelatedOnly), "enabled", "default_action"]
    search_fields = ["name", "tenant__slug", "route__name"]
