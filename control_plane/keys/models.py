from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from control_plane.catalog.models import Route, RouteGroup
from control_plane.core.models import ScopedQuerySet, UUIDModel
from control_plane.tenancy.models import Tenant, clean_set_tags
from shared import rules


class VirtualKey(UUIDModel):
    """A client's key to the data plane. The secret is shown once at creation and stored only
    as its SHA-256 (``key_hash``); ``key_hint`` is what may be shown back. Revoked keys are
    kept (usage and audit refer to them) and left out of snapshots."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=200)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_hint = models.CharField(max_length=32, editable=False)
    routes = models.ManyToManyField(Route, blank=True, related_name="keys")
    route_groups = models.ManyToManyField(RouteGroup, blank=True, related_name="keys")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    project = models.ForeignKey(
        "asc_tenancy.Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="keys"
    )
    max_parallel = models.PositiveIntegerField(
        default=0,
        blank=True,
        help_text="Requests in flight at once, per data-plane process; 0: no cap.",
    )
    max_body_bytes = models.PositiveIntegerField(
        default=0,
        blank=True,
        help_text="Largest request body accepted; 0: the data plane's own cap.",
    )
    max_tokens = models.PositiveIntegerField(
        default=0, blank=True, help_text="Largest max_tokens a request may ask for; 0: no cap."
    )
    tags = models.JSONField(
        default=dict,
        blank=True,
        help_text="Tags every request with this key carries (the client cannot override them), "
        'e.g. {"feature": "summarizer"}.',
    )
    asserts_end_user = models.BooleanField(
        default=False,
        help_text="Trust this key's x-asc-end-user header to name the person behind a request "
        "(for a backend acting for its users). Otherwise the person is the key's creator.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        editable=False,
        related_name="+",
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name} ({self.key_hint})"

    def clean(self) -> None:
        clean_set_tags(self)


class IdentityProvider(UUIDModel):
    """An OpenID Connect issuer whose JWTs the tenant's services may present instead of a
    virtual key. The data planes verify tokens against ``jwks`` (the issuer's key set, pasted
    or synced here), never calling the issuer on the request path."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="identity_providers")
    name = models.CharField(max_length=100)
    issuer = models.CharField(max_length=500, unique=True, help_text="The tokens' `iss`.")
    audience = models.CharField(max_length=500, help_text="The tokens' `aud` must contain it.")
    jwks = models.JSONField(help_text='The issuer\'s JSON Web Key Set: {"keys": [...]}.')
    subject_claim = models.CharField(max_length=100, default="sub")
    roles_claim = models.CharField(max_length=100, default="groups")
    routes = models.ManyToManyField(Route, blank=True, related_name="+")
    role_routes = models.JSONField(
        default=dict,
        blank=True,
        help_text='Route names by role: {"ml-team": ["gpt-4o", "claude"]}.',
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if jwks_problems := rules.jwks_document_problems(self.jwks):
            errors["jwks"] = "; ".join(jwks_problems)
        mapping = self.role_routes
        if not isinstance(mapping, dict) or not all(
            isinstance(v, list) and all(isinstance(n, str) for n in v) for v in mapping.values()
        ):
            errors["role_routes"] = 'route names by role: {"role": ["route", ...]}'
        elif self.tenant_id:
            names = {n for v in mapping.values() for n in v}
            known = set(
                Route.objects.filter(tenant_id=self.tenant_id).values_list("name", flat=True)
            )
            if unknown := sorted(names - known):
                errors["role_routes"] = f"no such routes in this tenant: {unknown}"
        if errors:
            raise ValidationError(errors)
