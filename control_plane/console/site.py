"""The admin site, with the console's front page as its index (``dashboard.front_page``).

Installed as Django's default site by ``admin_app.ConsoleAdminConfig`` (in INSTALLED_APPS in
place of ``django.contrib.admin``), so every app's ``admin.site.register`` lands here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from control_plane.console.dashboard import front_page


class ConsoleSite(admin.AdminSite):
    site_header = "ASC administration"
    site_title = "ASC"
    index_title = "Console"
    index_template = "admin/asc/console.html"

    def index(self, request: HttpRequest, extra_context: Any = None) -> TemplateResponse:
        context = {**front_page(request.user, timezone.now()), **(extra_context or {})}
        return super().index(request, context)
