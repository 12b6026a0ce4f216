from __future__ import annotations

from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from control_plane.core.models import ScopedQuerySet, UUIDModel
from shared import tags


class TenantQuerySet(ScopedQuerySet):
    tenant_path = ""


class Tenant(UUIDModel):
    """A team or subsidiary with its own routes, keys, credentials and residency rule."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    allowed_regions = models.JSONField(
        default=list, blank=True, help_text="Regions this tenant's traffic may go to; empty: any."
    )
    audit_retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Purge audit record contents after this many days."
    )
    allowed_tags = models.JSONField(
        default=dict,
        blank=True,
        help_text="Request tags accepted, key -> allowed values (empty list: any value), e.g. "
        '{"feature": ["summarizer", "search"], "team": []}.',
    )
    drop_unknown_tags = models.BooleanField(
        default=False,
        help_text="Drop request tags outside the allowed ones instead of refusing the request.",
    )
    trace_prompts = models.BooleanField(
        default=False, help_text="Traces of this tenant's requests may carry prompt text."
    )

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        if self.allowed_tags is None:  # an emptied form field
            self.allowed_tags = {}
        if problems := tags.rules_problems(self.allowed_tags):
            raise ValidationError({"allowed_tags": "; ".join(problems)})
        if not self._state.adding and (refused := self._tag_limits_refused()):
            raise ValidationError(
                {"allowed_tags": f"tag limits name tags these rules refuse: {', '.join(refused)}"}
            )

    def _tag_limits_refused(self) -> list[str]:
        """Tag values of the tenant's enabled tag limits the rules would no longer allow."""
        limited = self.limits.filter(scope="tag", enabled=True).values_list("tag", flat=True)
        return sorted(
            t
            for t in set(limited)
            if (parsed := tags.parse_subject(t)) is None
            or not tags.allows(self.allowed_tags, *parsed)
        )


class Role(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", "Tenant admin"
    DEVELOPER = "developer", "Developer"
    AUDITOR = "auditor", "Auditor / finance"


class MembershipSource(models.TextChoices):
    LOCAL = "local", "Granted here"
    SSO = "sso", "From the identity provider's groups"


class Membership(models.Model):
    """A user's role in one tenant. Platform admins are superusers and need no membership.
    Memberships from SSO are rewritten at each SSO login from the user's groups; local ones are
    never touched by SSO (break-glass, and people the identity provider does not know)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    source = models.CharField(
        max_length=8, choices=MembershipSource.choices, default=MembershipSource.LOCAL
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "user__username"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="one_role_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.tenant}"


class Project(UUIDModel):
    """A team or project inside a tenant: keys may belong to one, and budgets and rate limits
    may apply to all of its keys together (tenant > project > key)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    tags = models.JSONField(
        default=dict,
        blank=True,
        help_text='Tags every request of the project\'s keys carries, e.g. {"team": "search"}.',
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="project_name_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"

    def clean(self) -> None:
        clean_set_tags(self)


class Tagged(Protocol):
    tags: Any
    tenant_id: Any


def clean_set_tags(row: Tagged) -> None:
    """Save-time rule of the tags set on a key or project (an emptied form field: none)."""
    if row.tags is None:
        row.tags = {}
    tenant = Tenant.objects.filter(pk=row.tenant_id).first() if row.tenant_id else None
    if problems := set_tags_problems(row.tags, tenant):
        raise ValidationError({"tags": "; ".join(problems)})


def set_tags_problems(tags_: object, tenant: Tenant | None) -> list[str]:
    """Problems of tags set on a key or project: well formed, and allowed by the tenant."""
    problems = tags.tags_problems(tags_)
    if problems or tenant is None or not isinstance(tags_, dict):
        return problems
    refused = tags.not_allowed(tenant.allowed_tags, tags_)
    return [f"tags the tenant does not allow: {', '.join(refused)}"] if refused else []
