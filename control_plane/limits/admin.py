from __future__ import annotations

from django.contrib import admin

from control_plane.core.admin import RelatedOnly, ServiceAdmin
from control_plane.core.services import Writes
from control_plane.limits import services
from control_plane.limits.models import Limit


@admin.register(Limit)
class LimitAdmin(ServiceAdmin):
    writes = Writes(services.put_limit, services.delete_limit)
    list_display = ["tenant", "scope", "kind", "amount", "period", "hard", "enabled"]
    list_filter = [("tenant", RelatedOnly), "scope", "kind", "period", "hard", "enabled"]
    search_fields = ["tenant__slug", "key__name", "project__name", "route__name", "tag"]
