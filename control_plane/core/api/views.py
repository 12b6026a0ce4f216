"""Viewset bases: tenant scoping in the queryset, creation checked against the same rules.

Reads see ``restrict(user, "view")``; writes and actions with side effects find their object in
``restrict(user, "change")`` (``"delete"`` for deletes), so another tenant's object is a 404,
never a silent change; a write by a role that may never make it is a 403 before the body is
even read (``RoleMayAct``); creation is allowed only in a tenant where the user's role may
change that kind of row. Every check runs before anything is written.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from rest_framework import viewsets
from rest_framework.exceptions import PermissionDenied

from control_plane.core.access import VIEW, may_create_in
from control_plane.core.api.permissions import IsActiveUser, RoleMayAct, action_of
from control_plane.fleet.services import request_publish


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


class PublishingModelViewSet(ScopedModelViewSet):
    """Plain CRUD whose every write asks for a snapshot publish in the same transaction."""

    def perform_create(self, serializer: Any) -> None:
        self.check_create(serializer)
        with transaction.atomic():
            instance = serializer.save()
            request_publish(f"{instance._meta.verbose_name} {instance} created", self._user_id())

    def perform_update(self, serializer: Any) -> None:
        if "tenant" in serializer.validated_data:
            self.check_create(serializer)
        with transaction.atomic():
            instance = serializer.save()
            request_publish(f"{instance._meta.verbose_name} {instance} updated", self._user_id())

    def perform_destroy(self, instance: Any) -> None:
        with transaction.atomic():
            reason = f"{instance._meta.verbose_name} {instance} deleted"
            instance.delete()
            request_publish(reason, self._user_id())

    def _user_id(self) -> int | None:
        return getattr(self.request.user, "pk", None)
