"""The ``export/`` action of the usage and audit lists: the list's rows (scoped to the user,
filtered by the list's own filters) streamed as NDJSON or CSV by ``control_plane.core.export``.

The format is chosen by ``?format=ndjson|csv`` or the ``Accept`` header (NDJSON when neither
says); ``?as=jsonl|csv`` is still understood. Errors keep the API's JSON error shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from control_plane.core.export import CSV, MEDIA_TYPES, NDJSON, Export, encode, filename

Exporter = Callable[[QuerySet[Any], dict[str, Any]], Export]
LEGACY_AS = {"jsonl": NDJSON, "ndjson": NDJSON, "csv": CSV}
NOT_FILTERS = ("format", "as")


class _ExportRenderer(BaseRenderer):
    """Chooses the format in content negotiation; the rows are streamed, not rendered."""

    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, context: Any = None) -> bytes:
        return json.dumps(data).encode()


class NDJSONRenderer(_ExportRenderer):
    media_type = MEDIA_TYPES[NDJSON]
    format = NDJSON


class CSVRenderer(_ExportRenderer):
    media_type = MEDIA_TYPES[CSV]
    format = CSV


RENDERERS = [NDJSONRenderer, CSVRenderer]


def schema(kind: str, trailer: str) -> dict[str, Any]:
    """``extend_schema`` arguments describing a kind's export."""
    return {
        "summary": f"Every {kind} record matching the filters, streamed",
        "description": (
            f"All {kind} records the list would hold with these filters (every page of it), in "
            "one consistent read, streamed as NDJSON (one object a line) or CSV. The last line "
            'is the trailer: `{"trailer": {...}}` in NDJSON, `# trailer {...}` in CSV, with '
            f"`count`, `sha256` of every byte before it, and {trailer}. A file without its "
            "trailer was cut short."
        ),
        "filters": True,
        "parameters": [
            OpenApiParameter("format", str, enum=[NDJSON, CSV], description="or use Accept"),
            OpenApiParameter("as", str, enum=sorted(LEGACY_AS), deprecated=True),
        ],
        "responses": {
            (200, MEDIA_TYPES[NDJSON]): OpenApiTypes.STR,
            (200, MEDIA_TYPES[CSV]): OpenApiTypes.STR,
        },
    }


class ExportMixin:
    """For a scoped read-only viewset with a filterset: ``export_response`` answers its
    ``export`` action."""

    request: Any
    filter_queryset: Callable[[QuerySet[Any]], QuerySet[Any]]
    get_queryset: Callable[[], QuerySet[Any]]

    def export_response(self, request: Request, exporter: Exporter) -> StreamingHttpResponse:
        fmt = request.accepted_renderer.format
        legacy = request.query_params.get("as")
        if legacy is not None:
            if legacy not in LEGACY_AS:
                raise ValidationError({"as": ["jsonl or csv"]})
            fmt = LEGACY_AS[legacy]
        records = self.filter_queryset(self.get_queryset())
        filters = {k: v for k, v in request.query_params.items() if k not in NOT_FILTERS}
        export = exporter(records, filters)
        response = StreamingHttpResponse(encode(export, fmt), content_type=MEDIA_TYPES[fmt])
        response["Content-Disposition"] = f'attachment; filename="{filename(export.kind, fmt)}"'
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)  # type: ignore[misc]  # APIView's
        except Http404:  # DRF's answer to an unknown ?format=
            raise NotAcceptable("format: ndjson or csv") from None

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]  # APIView's
        if isinstance(response, Response) and response.status_code >= 400:
            response.accepted_renderer = JSONRenderer()  # errors keep the API's JSON shape
            response.accepted_media_type = "application/json"
        return response
