"""Request-wide state the access rules keep (``core.access.per_request``)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from control_plane.core.access import per_request


class AccessMiddleware:
    """Each user's memberships are loaded at most once per request, however many models and
    rows the request checks (the admin's index asks about every model)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        with per_request():
            return self.get_response(request)
