from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from control_plane.core.access import CHANGE, VIEW


def action_of(request: Request) -> str:
    return VIEW if request.method in SAFE_METHODS else CHANGE


class IsActiveUser(BasePermission):
    """Authenticated and active. What a user may see and change is decided by the queryset
    (``restrict``) and, for creation, by ``ScopedViewSetMixin.perform_create``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)
