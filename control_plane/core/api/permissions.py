from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from control_plane.core.access import CHANGE, DELETE, VIEW, has_role_for


def action_of(request: Request) -> str:
    if request.method in SAFE_METHODS:
        return VIEW
    return DELETE if request.method == "DELETE" else CHANGE


class IsActiveUser(BasePermission):
    """Authenticated and active. What a user may see and change is decided by the queryset
    (``restrict``) and, for creation, by ``ScopedViewSetMixin.perform_create``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)


class RoleMayAct(BasePermission):
    """A write needs a role that may make that kind of change somewhere, checked before
    anything else (so an auditor's write is refused whatever its body, and actions that touch
    no single row, such as publishing, are covered too). Which rows is the queryset's job."""

    def has_permission(self, request: Request, view: Any) -> bool:
        action = action_of(request)
        if action == VIEW:
            return True
        return has_role_for(view.queryset.model._meta.model_name, request.user, action)
