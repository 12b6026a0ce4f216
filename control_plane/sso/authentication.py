"""API authentication by an identity-provider token (``Authorization: Bearer <JWT>``): for
scripts and CLIs of people who log in through SSO. The token must be signed by the configured
issuer for ASC_OIDC_API_AUDIENCE (default: the client id, so an ID token works)."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from control_plane.sso import services
from control_plane.sso.oidc import OidcError, OidcSettings, verify


class OidcBearerAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        config = OidcSettings.load()
        if config is None:
            return None
        try:
            claims = verify(config, parts[1].decode(errors="replace"), audience=config.api_audience)
            return services.api_user(config, claims), claims
        except OidcError as exc:
            raise AuthenticationFailed(str(exc)) from exc

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="asc"'
