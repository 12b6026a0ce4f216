"""Viewset bases: tenant scoping in the queryset, creation checked against the same rules.

Reads see ``restrict(user, "view")``; writes and actions with side effects find their object in
``restrict(user, "change")`` (``"delete"`` for deletes), so another tenant's object is a 404,
never a silent change; a write by a role that may never make it is a 403 before the body is
even read (``RoleMayAct``); creation is allowed only in a tenant where the user's role may
change that kind of row. Every check runs before anything is written; the writes themselves
go through the app's services, in the name of the requesting user.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied

from control_plane.core.access import VIEW, may_create_in
from control_plane.core.api.permissions import IsActiveUser, RoleMayAct, action_of
from control_plane.core.services import Writes


class ScopedViewSetMixin:
    request: Any

    def get_queryset(self) -> QuerySet[Any]:
        queryset = super().get_queryset()  # type: ignore[misc]  # GenericAPIView's, a fresh copy
        return queryset.restrict(self.request.user, action_of(self.request))  # type: ignore[no-any-return]  # the queryset above is untyped

    def get_object(self) -> Any:
        """A row the user may see but not change is a 403; a row they may not see, a 404."""
        try:
            return super().get_object()  # type: ignore[misc]  # GenericAPIView's, on the viewset
        except Http404:
            if action_of(self.request) == VIEW:
                raise
            lookup = {self.lookup_field: self.kwargs[self.lookup_url_kwarg or self.lookup_field]}  # type: ignore[attr-defined]  # GenericAPIView's, on the viewset
            visible = self.queryset.model.objects.restrict(self.request.user, VIEW)  # type: ignore[attr-defined]  # GenericAPIView's, on the viewset
            try:
                exists = visible.filter(**lookup).exists()
            except (ValueError, ValidationError):  # a malformed id: not found, as for reads
                exists = False
            if exists:
                raise PermissionDenied("your role may not change this") from None
            raise

    def check_create(self, serializer: Any) -> None:
        model = serializer.Meta.model
        tenant_path = model.objects.all().tenant_path
        tenant = serializer.validated_data.get("tenant") if tenant_path == "tenant" else None
        if tenant is None and tenant_path == "tenant" and serializer.instance is not None:
            tenant = serializer.instance.tenant
        if not may_create_in(
            model._meta.model_name, self.request.user, getattr(tenant, "pk", None)
        ):
            raise PermissionDenied(f"you may not create a {model._meta.verbose_name} here")

    def perform_create(self, serializer: Any) -> None:
        self.check_create(serializer)
        serializer.save()

    def perform_update(self, serializer: Any) -> None:
        if "tenant" in serializer.validated_data:  # moving a row to a tenant creates it there
            self.check_create(serializer)
        serializer.save()


class ScopedModelViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):  # type: ignore[type-arg]  # each subclass names the model
    permission_classes = [IsActiveUser, RoleMayAct]


class ScopedReadOnlyViewSet(ScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):  # type: ignore[type-arg]  # each subclass names the model
    permission_classes = [IsActiveUser, RoleMayAct]


class ServiceModelViewSet(ScopedModelViewSet):
    """CRUD whose writes go through the app's services (``writes``), with the requesting user
    as the actor, so the snapshot each write publishes says who made it."""

    writes: Writes[Any]

    def perform_create(self, serializer: Any) -> None:
        self.check_create(serializer)
        self._put(serializer)

    def perform_update(self, serializer: Any) -> None:
        if "tenant" in serializer.validated_data:
            self.check_create(serializer)
        self._put(serializer)

    def perform_destroy(self, instance: Any) -> None:
        self.writes.delete(instance, actor=self.request.user)

    def _put(self, serializer: Any) -> None:
        row = serializer.instance or serializer.Meta.model()
        related = set_fields(row, serializer.validated_data)
        serializer.instance = self.writes.put(row, actor=self.request.user, **related)


def set_fields(row: Model, data: dict[str, Any]) -> dict[str, Any]:
    """Set ``row``'s own fields from ``data``; return the rest (many-to-many values, and
    inputs that are no field, such as a credential's secret) for the service to take."""
    own = {f.name for f in row._meta.concrete_fields}
    for name, value in data.items():
        if name in own:
            setattr(row, name, value)
    return {name: value for name, value in data.items() if name not in own}
