"""Budgets and rate limits, and the lease ledger that shares them among data planes.

A ``Limit`` caps spend (a budget, in USD per calendar period) or traffic (requests or tokens
per minute) of a tenant, a project, a key or a route. Data planes enforce it with leases
(DESIGN.md section 4): the ledger (``LeaseWindow`` + ``LeaseHolding``) records, per limit and
window, what each node was granted and has committed, and every grant happens under a lock on
the window row so the granted total never passes the limit.
"""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from control_plane.catalog.models import Route
from control_plane.core.models import ScopedQuerySet, UUIDModel
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Project, Tenant
from shared import rules, tags, windows


class Scope(models.TextChoices):
    TENANT = "tenant", "Tenant"
    PROJECT = "project", "Project"
    KEY = "key", "Key"
    ROUTE = "route", "Route"
    TAG = "tag", "Tag value"


class Kind(models.TextChoices):
    BUDGET = "budget", "Budget (USD per period)"
    REQUESTS = "requests", "Requests per minute"
    TOKENS = "tokens", "Tokens per minute"


class Period(models.TextChoices):
    DAY = windows.DAY, "Daily"
    WEEK = windows.WEEK, "Weekly"
    MONTH = windows.MONTH, "Monthly"
    NONE = windows.NONE, "No period"
    MINUTE = windows.MINUTE, "Per minute"


class Limit(UUIDModel):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="limits")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.TENANT)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True)
    key = models.ForeignKey(VirtualKey, on_delete=models.CASCADE, null=True, blank=True)
    route = models.ForeignKey(Route, on_delete=models.CASCADE, null=True, blank=True)
    tag = models.CharField(
        max_length=200,
        blank=True,
        help_text='Tag limits: the tag value it applies to, "key=value" (e.g. feature=summarizer).',
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BUDGET)
    period = models.CharField(
        max_length=8,
        choices=Period.choices,
        default=Period.MONTH,
        help_text="Budgets: day, week, month or none. Rate limits are always per minute.",
    )
    time_zone = models.CharField(max_length=64, default="UTC")
    amount = models.DecimalField(
        max_digits=18,
        decimal_places=6,
        validators=[MinValueValidator(Decimal(0))],
        help_text="USD for budgets; requests or tokens per minute for rate limits.",
    )
    hard = models.BooleanField(
        default=True, help_text="Refuse past the limit. Soft limits only record and alert."
    )
    alert_thresholds = models.JSONField(
        default=list, blank=True, help_text="Fractions of the amount to alert at, e.g. [0.8, 1]."
    )
    enabled = models.BooleanField(default=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__slug", "scope", "kind"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.scope}:{self.subject_id()} {self.kind} {self.amount}"

    def subject_id(self) -> str:
        subject = {
            Scope.TENANT: self.tenant_id,
            Scope.PROJECT: self.project_id,
            Scope.KEY: self.key_id,
            Scope.ROUTE: self.route_id,
            Scope.TAG: self.tag,
        }[Scope(self.scope)]
        return str(subject or "")

    def clean(self) -> None:
        errors: dict[str, str] = {}
        subject = {Scope.PROJECT: self.project, Scope.KEY: self.key, Scope.ROUTE: self.route}
        for scope, row in subject.items():
            if self.scope == scope and row is None:
                errors[scope.value] = f"a {scope.label.lower()} limit names its {scope.value}"
            elif self.scope != scope and row is not None:
                errors[scope.value] = f"only a {scope.label.lower()} limit names a {scope.value}"
            elif row is not None and self.tenant_id and row.tenant_id != self.tenant_id:
                errors[scope.value] = f"the {scope.value} belongs to another tenant"
        if tag_problem := self._tag_problem():
            errors["tag"] = tag_problem
        if self.kind != Kind.BUDGET:
            self.period = Period.MINUTE
        elif self.period == Period.MINUTE:
            errors["period"] = "a budget runs per day, week, month or for ever"
        kind, period = rules.LIMIT_KINDS.get(self.kind), rules.LIMIT_PERIODS.get(self.period)
        if kind is not None and period is not None:  # unknown choices are the fields' errors
            units = self.units() if isinstance(self.amount, Decimal) else 0  # as for the field
            for field, messages in rules.limit_problems(kind, period, units).items():
                errors[field] = "; ".join(messages)
        try:
            ZoneInfo(self.time_zone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            errors["time_zone"] = f"unknown time zone {self.time_zone!r}"
        thresholds = self.alert_thresholds
        if not isinstance(thresholds, list) or not all(
            isinstance(t, int | float) and 0 < t <= 10 for t in thresholds
        ):
            errors["alert_thresholds"] = "a list of fractions of the amount, e.g. [0.8, 1]"
        if errors:
            raise ValidationError(errors)

    def _tag_problem(self) -> str | None:
        if self.scope != Scope.TAG:
            return "only a tag limit names a tag" if self.tag else None
        parsed = tags.parse_subject(self.tag)
        if parsed is None:
            return 'a tag limit names a well-formed tag "key=value", e.g. feature=summarizer'
        tenant = Tenant.objects.filter(pk=self.tenant_id).first() if self.tenant_id else None
        if tenant is not None and not tags.allows(tenant.allowed_tags, *parsed):
            return f"the tenant does not allow the tag {self.tag}"
        return None

    def units(self) -> int:
        """The amount in lease units: nano-USD for budgets, requests or tokens otherwise."""
        if self.kind == Kind.BUDGET:
            return int((self.amount * 1_000_000_000).to_integral_value())
        return int(self.amount)


class LeaseWindow(models.Model):
    """One window of one limit; its row is the lock every grant of that window takes."""

    limit = models.ForeignKey(Limit, on_delete=models.CASCADE, related_name="windows")
    window = models.CharField(max_length=32)
    alerted = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["limit", "window"], name="one_row_per_window")
        ]

    def __str__(self) -> str:
        return f"{self.limit_id}@{self.window}"


class LeaseHolding(models.Model):
    """What one node was granted and has committed (spent + reserved) in one window."""

    lease_window = models.ForeignKey(LeaseWindow, on_delete=models.CASCADE, related_name="holdings")
    node_id = models.CharField(max_length=200)
    granted = models.BigIntegerField(default=0)
    committed = models.BigIntegerField(default=0)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["lease_window", "node_id"], name="one_holding_per_node")
        ]

    def __str__(self) -> str:
        return f"{self.node_id}: {self.committed}/{self.granted}"
