"""Reads over usage records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.db.models import Avg, Count, F, Q, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import TruncDay, TruncHour, TruncMinute, TruncSecond

from control_plane.usage.models import UsageRecord
from shared import tags as tag_rules

DENIED = Q(status_code__gte=400, status_code__lt=500)  # refused by policy or the request's fault


@dataclass(frozen=True)
class Bucket:
    start: datetime
    requests: int
    spend_usd: float
    ttft_ms: float
    fallbacks: int
    denials: int


def bucket_size(since: datetime, until: datetime) -> timedelta:
    span = until - since
    if span <= timedelta(minutes=10):
        return timedelta(seconds=1)
    if span <= timedelta(hours=6):
        return timedelta(minutes=1)
    return timedelta(hours=1) if span <= timedelta(days=14) else timedelta(days=1)


def fill(buckets: list[Bucket], since: datetime, until: datetime, step: timedelta) -> list[Bucket]:
    """Every bucket of the range, empty ones as zeros, so charts share one time axis."""
    by_start = {b.start: b for b in buckets}
    out, start = [], since
    while start < until:
        out.append(by_start.get(start, Bucket(start, 0, 0.0, 0.0, 0, 0)))
        start += step
    return out


def timeline(user: Any, tenant_id: Any, since: datetime, until: datetime) -> list[Bucket]:
    """One tenant's usage in per-second, -minute, -hour or -day buckets (by the range's length)
    covering the whole range, as the user may see it (a developer sees their own keys only).
    ``since`` must be aligned to the bucket size (the admin passes midnights)."""
    step = bucket_size(since, until)
    trunc = {1: TruncSecond, 60: TruncMinute, 3600: TruncHour}.get(
        int(step.total_seconds()), TruncDay
    )
    rows = (
        UsageRecord.objects.restrict(user)
        .filter(tenant_id=tenant_id, ts__gte=since, ts__lt=until)
        .annotate(bucket=trunc("ts"))
        .values("bucket")
        .annotate(
            requests=Count("id"),
            spend=Sum("cost_nano_usd"),
            ttft=Avg("ttft_ms", filter=Q(status_code=200)),
            fallbacks=Count("id", filter=~Q(fallbacks=[])),
            denials=Count("id", filter=DENIED),
        )
        .order_by("bucket")
    )
    found = [
        Bucket(
            start=r["bucket"],
            requests=r["requests"],
            spend_usd=(r["spend"] or 0) / 1e9,
            ttft_ms=float(r["ttft"] or 0),
            fallbacks=r["fallbacks"],
            denials=r["denials"],
        )
        for r in rows
    ]
    return fill(found, since, until, step)


@dataclass(frozen=True)
class TenantTotals:
    tenant_id: Any
    slug: str | None  # None: the tenant was deleted
    requests: int
    spend_usd: float
    denials: int


def totals_by_tenant(user: Any, since: datetime, until: datetime) -> list[TenantTotals]:
    """Requests, spend and denials per tenant in ``[since, until)`` as the user may see them
    (a developer their own keys' only), most spent first; one query."""
    rows = (
        UsageRecord.objects.restrict(user)
        .filter(ts__gte=since, ts__lt=until)
        .values("tenant_id", "tenant__slug")
        .annotate(
            requests=Count("id"), spend=Sum("cost_nano_usd"), denials=Count("id", filter=DENIED)
        )
        .order_by("-spend", "-requests", "tenant__slug")
    )
    return [
        TenantTotals(
            r["tenant_id"], r["tenant__slug"], r["requests"], (r["spend"] or 0) / 1e9, r["denials"]
        )
        for r in rows
    ]


def hourly_requests_by_tenant(user: Any, since: datetime, until: datetime) -> dict[Any, list[int]]:
    """Requests per hour and tenant over ``[since, until)`` (``since`` on the hour), as the
    user may see them, every hour present; one query."""
    hours = int((until - since).total_seconds() // 3600) + 1
    out: dict[Any, list[int]] = {}
    rows = (
        UsageRecord.objects.restrict(user)
        .filter(ts__gte=since, ts__lt=until)
        .annotate(hour=TruncHour("ts"))
        .values("tenant_id", "hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    for r in rows:
        i = int((r["hour"] - since).total_seconds() // 3600)
        out.setdefault(r["tenant_id"], [0] * hours)[i] += r["n"]
    return out


def top_denials(user: Any, since: datetime, until: datetime, n: int = 8) -> list[tuple[str, int]]:
    """The ``n`` most frequent reasons of denied requests (4xx) in ``[since, until)``, as the
    user may see them, with their counts."""
    rows = (
        UsageRecord.objects.restrict(user)
        .filter(DENIED, ts__gte=since, ts__lt=until)
        .values("error_code")
        .annotate(n=Count("id"))
        .order_by("-n", "error_code")[:n]
    )
    return [(r["error_code"] or "unspecified", r["n"]) for r in rows]


# Spend reports: spend, tokens and requests grouped by one dimension over a date range.

# Dimension -> (the usage column or lookup it groups by, the model naming its ids).
SPEND_GROUPS: dict[str, tuple[str, str]] = {
    "tenant": ("tenant_id", "asc_tenancy.Tenant"),
    "project": ("key__project_id", "asc_tenancy.Project"),
    "key": ("key_id", "asc_keys.VirtualKey"),
    "end_user": ("subject", ""),
    "route": ("route_id", "asc_catalog.Route"),
    "provider": ("provider_id", "asc_catalog.Provider"),
    "model": ("model_id", "asc_catalog.Model"),
}
TAG_PREFIX = "tag:"


def spend_group_problem(group_by: str) -> str | None:
    """Why ``group_by`` is not a dimension spend can be grouped by (None: it is)."""
    if group_by in SPEND_GROUPS:
        return None
    if group_by.startswith(TAG_PREFIX):
        return tag_rules.key_problem(group_by.removeprefix(TAG_PREFIX))
    return f"group_by is one of {', '.join(SPEND_GROUPS)} or tag:<key>, not {group_by[:80]!r}"


@dataclass(frozen=True)
class SpendRow:
    group: str | None  # the id, end user or tag value; None: requests without one
    label: str  # what to show for it (a name; the value itself for end users and tags)
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_nano_usd: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def spend_usd(self) -> float:
        return self.cost_nano_usd / 1e9


def spend(
    user: Any, group_by: str, since: datetime, until: datetime, tenant_id: Any = None
) -> list[SpendRow]:
    """Spend, tokens and requests in ``[since, until)`` grouped by ``group_by`` (checked
    with ``spend_group_problem`` first), over the usage records the user may see (a developer
    their own keys' only), optionally of one tenant; most spent first, in one query (and one
    more for the names of the groups' ids). A project is the key's current project."""
    records = UsageRecord.objects.restrict(user).filter(ts__gte=since, ts__lt=until)
    if tenant_id is not None:
        records = records.filter(tenant_id=tenant_id)
    column: Any
    if group_by.startswith(TAG_PREFIX):
        column, model = KT(f"tags__{group_by.removeprefix(TAG_PREFIX)}"), ""
    else:
        name, model = SPEND_GROUPS[group_by]
        column = F(name)
    rows = (
        records.values(group=column)
        .annotate(
            requests=Count("id"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
            cost=Sum("cost_nano_usd"),
        )
        .order_by("-cost", "-requests", "group")
    )
    found = [
        (
            None if r["group"] in (None, "") else str(r["group"]),
            r["requests"],
            r["prompt"] or 0,
            r["completion"] or 0,
            r["cost"] or 0,
        )
        for r in rows
    ]
    names = _names(model, [g for g, *_ in found if g is not None])
    return [SpendRow(g, names.get(g, g) if g else "", *figures) for g, *figures in found]


def _names(model: str, ids: list[str]) -> dict[str, str]:
    """Names of the groups' ids (only ids of the user's own records reach here)."""
    if not model or not ids:
        return {}
    rows = apps.get_model(model).objects.filter(pk__in=ids)
    return {str(row.pk): _name_of(row) for row in rows}


def _name_of(row: Any) -> str:
    for attribute in ("slug", "provider_model"):
        if hasattr(row, attribute):
            return str(getattr(row, attribute))
    return str(row.name)
