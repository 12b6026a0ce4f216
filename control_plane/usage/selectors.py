"""Reads over usage records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncDay, TruncHour, TruncMinute

from control_plane.usage.models import UsageRecord


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
    """One tenant's usage in per-minute, per-hour or per-day buckets (by the range's length)
    covering the whole range, as the user may see it (a developer sees their own keys only).
    ``since`` must be aligned to the bucket size (the admin passes midnights)."""
    step = bucket_size(since, until)
    trunc = {60: TruncMinute, 3600: TruncHour}.get(int(step.total_seconds()), TruncDay)
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
            denials=Count("id", filter=Q(status_code__gte=400, status_code__lt=500)),
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
