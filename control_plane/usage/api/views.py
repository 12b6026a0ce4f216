from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import action
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from control_plane.core.api import export
from control_plane.core.api.pagination import IngestionCursorPagination
from control_plane.core.api.permissions import IsActiveUser
from control_plane.core.api.views import ScopedReadOnlyViewSet
from control_plane.usage import spend
from control_plane.usage.api.serializers import UsageRecordSerializer
from control_plane.usage.export import usage_export
from control_plane.usage.filters import UsageRecordFilterSet
from control_plane.usage.models import UsageRecord


class UsageRecordViewSet(export.ExportMixin, ScopedReadOnlyViewSet):
    """Usage records, newest ingested first, read with a cursor (``IngestionCursorPagination``)."""

    queryset = UsageRecord.objects.all()
    serializer_class = UsageRecordSerializer
    filterset_class = UsageRecordFilterSet
    pagination_class = IngestionCursorPagination

    @extend_schema(**export.schema("usage", "`totals` (tokens and cost, in nano-USD)"))
    @action(detail=False, methods=["get"], renderer_classes=export.RENDERERS)
    def export(self, request: Request) -> StreamingHttpResponse:
        return self.export_response(request, usage_export)


class SpendCSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, context: Any = None) -> bytes:
        return spend.as_csv(data["groups"]).encode()


class SpendView(APIView):
    """Spend, tokens and requests grouped by one dimension over a date range, over the usage
    records the caller may see (a developer: their own keys'); JSON, or CSV with
    ``?format=csv`` or ``Accept: text/csv``."""

    permission_classes = [IsActiveUser]
    renderer_classes = [JSONRenderer, SpendCSVRenderer]

    @extend_schema(
        summary="Spend grouped by tag, project, key, end user, route, provider, model or tenant",
        parameters=[
            OpenApiParameter(
                "group_by",
                str,
                required=True,
                description="tenant, project, key, end_user, route, provider, model, or "
                "tag:<key> (e.g. tag:feature)",
            ),
            OpenApiParameter("since", str, description="ISO 8601 date or time, inclusive"),
            OpenApiParameter("until", str, description="ISO 8601 date or time, exclusive"),
            OpenApiParameter("tenant", str, description="only this tenant (its id)"),
            OpenApiParameter("format", str, enum=["json", "csv"], description="or use Accept"),
        ],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): str},
    )
    def get(self, request: Request) -> Response:
        query = spend.read_query(request.query_params, datetime.now(UTC))
        if not isinstance(query, spend.SpendQuery):
            raise ValidationError(query)
        response = Response(spend.report(query, spend.run(request.user, query)))
        if request.accepted_renderer.format == "csv":
            response["Content-Disposition"] = f'attachment; filename="{spend.filename(query)}"'
        return response

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:  # DRF's answer to an unknown ?format=
            raise NotAcceptable("format: json or csv") from None

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if isinstance(response, Response) and response.status_code >= 400:
            response.accepted_renderer = JSONRenderer()  # errors keep the API's JSON shape
            response.accepted_media_type = "application/json"
        return response
