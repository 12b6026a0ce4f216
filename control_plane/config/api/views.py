"""Configuration as code over the API: the same export and import as the ``asc_export`` and
``asc_import`` commands. Platform admins handle the whole configuration; a tenant admin, their
own tenant's part."""

from __future__ import annotations

from typing import Any

import yaml
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from control_plane.config import document as d
from control_plane.config import services
from control_plane.config.api.serializers import (
    ConfigImportSerializer,
    ExportQuerySerializer,
    ImportResultSerializer,
    LiteLLMImportSerializer,
)
from control_plane.config.litellm import LiteLLMError
from control_plane.core.access import ADMIN, is_platform_admin, roles_by_tenant
from control_plane.tenancy.models import Tenant


def check_tenant_admin(user: Any, slug: str | None) -> None:
    """Platform admins: any tenant or all. Others: a tenant they administer (a tenant they
    cannot see is "not found", as everywhere in the API)."""
    if is_platform_admin(user):
        if slug is not None and not Tenant.objects.filter(slug=slug).exists():
            raise NotFound(f"no tenant {slug!r}")
        return
    if slug is None:
        raise PermissionDenied("only platform admins handle the whole configuration")
    tenant = Tenant.objects.restrict(user).filter(slug=slug).first()
    if tenant is None:
        raise NotFound(f"no tenant {slug!r}")
    if roles_by_tenant(user).get(tenant.pk) != ADMIN:
        raise PermissionDenied("only the tenant's admins handle its configuration")


def _loaded(value: Any, field: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ValidationError({field: f"not YAML: {exc}"}) from None


def _result(result: services.Result) -> Response:
    return Response(
        {
            "applied": result.applied,
            "changes": [
                {"op": c.op, "path": d.show_path(c.path), "changed": c.fields}
                for c in result.changes
            ],
            "diff": result.report(),
            "warnings": result.warnings,
        }
    )


class ConfigExportView(APIView):
    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses={(200, "application/yaml"): OpenApiTypes.STR},
    )
    def get(self, request: Request) -> HttpResponse:
        """The configuration as YAML, without secrets (credentials by name, keys by hash)."""
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        slug = query.validated_data.get("tenant") or None
        check_tenant_admin(request.user, slug)
        response = HttpResponse(services.export_yaml(slug), content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="{slug or "asc"}-config.yaml"'
        return response


class ConfigImportView(APIView):
    @extend_schema(
        request=ConfigImportSerializer,
        responses={200: ImportResultSerializer, 400: OpenApiResponse(description="refused")},
    )
    def post(self, request: Request) -> Response:
        """Make the configuration what the document says (``dry_run``: only say what would
        change). Idempotent; refused as a whole, with nothing written, when any change is."""
        body = ConfigImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        check_tenant_admin(request.user, data.get("tenant"))
        try:
            document = d.parse(_loaded(data["document"], "document"))
            result = services.import_document(
                document,
                tenant=data.get("tenant"),
                prune=data["prune"],
                dry_run=data["dry_run"],
                secrets=data.get("secrets", {}),
                user=request.user,
                reason="configuration imported through the API",
            )
        except services.NotAllowed as exc:
            raise PermissionDenied("; ".join(exc.problems)) from exc
        except (d.DocumentError, services.ImportRefused) as exc:
            raise ValidationError({"document": exc.problems}) from exc
        return _result(result)


class LiteLLMImportView(APIView):
    @extend_schema(
        request=LiteLLMImportSerializer,
        responses={200: ImportResultSerializer, 400: OpenApiResponse(description="refused")},
    )
    def post(self, request: Request) -> Response:
        """Import a LiteLLM proxy config.yaml into one tenant (see ``asc_import_litellm``)."""
        body = LiteLLMImportSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        check_tenant_admin(request.user, data["tenant"])
        try:
            result = services.import_litellm(
                _loaded(data["config"], "config"),
                data["tenant"],
                dry_run=data["dry_run"],
                env=data.get("secrets", {}),
                user=request.user,
            )
        except services.NotAllowed as exc:
            raise PermissionDenied("; ".join(exc.problems)) from exc
        except (LiteLLMError, d.DocumentError, services.ImportRefused) as exc:
            raise ValidationError({"config": getattr(exc, "problems", [str(exc)])}) from exc
        return _result(result)
