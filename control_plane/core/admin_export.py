"""The export buttons of the usage and audit lists in the admin: every row the list selects
(its filters, search and date drill-down; every page of it, not just the one shown), streamed
by ``control_plane.core.export`` with its trailer, under the same scoping as the list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse

from control_plane.core.export import CSV, MEDIA_TYPES, NDJSON, Export, encode, filename

Exporter = Callable[[QuerySet[Any], dict[str, Any]], Export]
NOT_FILTERS = ("p", "e")  # the changelist's page number and error flag


def download(export: Export, fmt: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(encode(export, fmt), content_type=MEDIA_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename(export.kind, fmt)}"'
    return response


# The changelist template with the export buttons (each admin sets it as change_list_template).
CHANGE_LIST_TEMPLATE = "admin/asc/export_change_list.html"


class ExportAdminMixin:
    """For a read-only ``ScopedAdmin``: "Export CSV" and "Export NDJSON" on the changelist."""

    exporter: Exporter
    model: Any
    admin_site: Any
    has_view_permission: Callable[..., bool]
    get_changelist_instance: Callable[[HttpRequest], Any]

    def _export_url_name(self, fmt: str) -> str:
        return f"{self.model._meta.app_label}_{self.model._meta.model_name}_export_{fmt}"

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                f"export/{fmt}/",
                self.admin_site.admin_view(self._export_view(fmt)),
                name=self._export_url_name(fmt),
            )
            for fmt in (CSV, NDJSON)
        ]
        return custom + super().get_urls()  # type: ignore[misc, no-any-return]  # ModelAdmin's

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        params = request.GET.copy()
        for name in NOT_FILTERS:
            params.pop(name, None)
        query = f"?{params.urlencode()}" if params else ""
        links = {
            fmt: reverse(f"admin:{self._export_url_name(fmt)}") + query for fmt in (CSV, NDJSON)
        }
        context = {**(extra_context or {}), "export_links": links}
        return super().changelist_view(request, context)  # type: ignore[misc, no-any-return]  # ModelAdmin's

    def _export_view(self, fmt: str) -> Callable[[HttpRequest], HttpResponseBase]:
        def view(request: HttpRequest) -> HttpResponseBase:
            if not self.has_view_permission(request):
                raise PermissionDenied
            try:
                changelist = self.get_changelist_instance(request)
            except IncorrectLookupParameters:
                return HttpResponseBadRequest("these filters are not valid on this list")
            records = changelist.get_queryset(request)
            filters = {k: v for k, v in request.GET.items() if k not in NOT_FILTERS}
            return download(self.exporter(records, filters), fmt)

        return view
