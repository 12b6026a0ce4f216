"""How the OpenAPI schema describes SSO bearer tokens (loaded by the app's ``ready``)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class OidcBearerScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]  # its registering __init_subclass__ is untyped
    target_class = "control_plane.sso.authentication.OidcBearerAuthentication"
    name = "oidcBearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A token of the SSO identity provider (ASC_OIDC_ISSUER) for ASC.",
        }
