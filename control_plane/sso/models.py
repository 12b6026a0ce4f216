"""What single sign-on knows: which identity-provider groups grant which role in which tenant,
and which local user an identity-provider subject is."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from control_plane.core.models import ScopedQuerySet, UUIDModel
from control_plane.tenancy.models import Role, Tenant


class SsoGroup(UUIDModel):
    """Members of ``group`` (in the ID token's groups claim) get ``role`` in ``tenant`` at
    their next SSO login. Platform admins come from ASC_OIDC_ADMIN_GROUPS, never from here, so
    no tenant admin can map a group to the platform."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sso_groups")
    group = models.CharField(max_length=200)
    role = models.CharField(max_length=32, choices=Role.choices)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "group"]
        verbose_name = "SSO group"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "group"], name="one_role_per_sso_group")
        ]

    def __str__(self) -> str:
        return f"{self.group} -> {self.role} of {self.tenant}"


class OidcIdentity(models.Model):
    """The local user an identity provider's (issuer, subject) logs in as. Users are matched
    by subject only, never by user name or e-mail, so an identity provider account cannot take
    over a local (break-glass) account that happens to share its name."""

    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="oidc_identity"
    )
    last_login_groups = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name = "OIDC identity"
        verbose_name_plural = "OIDC identities"
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_subject")
        ]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
