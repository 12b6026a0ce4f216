from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from control_plane.sso.oidc import OidcSettings


def sso(request: HttpRequest) -> dict[str, Any]:
    """``asc_sso_label`` for the admin's login page: the SSO button, when SSO is on."""
    config = OidcSettings.load()
    return {"asc_sso_label": config.label if config else ""}
