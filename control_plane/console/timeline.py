"""The per-tenant timeline page: spend, requests, time to first token, fallbacks and policy
denials as lanes of one time axis, with the range's events marked across them (snapshot
versions published, budget thresholds crossed, circuits found open). It reads usage, fleet and
limits, so it lives in the app on top; its URL is the tenant admin's (``console.admin``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from control_plane.core.access import is_platform_admin
from control_plane.core.filters import in_utc
from control_plane.fleet import selectors as fleet
from control_plane.limits import selectors as limits
from control_plane.tenancy.models import Tenant
from control_plane.usage.charts import Lane, Mark, legend, timeline_chart
from control_plane.usage.selectors import Bucket, bucket_size, timeline

# Ranges ending now, by their name in ``?range=``: (length, bucket alignment).
RECENT = {
    "5m": (timedelta(minutes=5), timedelta(seconds=1)),
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=1)),
    "24h": (timedelta(hours=24), timedelta(hours=1)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
}
DEFAULT_RANGE = "24h"
MAX_SPAN = timedelta(days=366)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _moment(value: str | None) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone), or None when absent or malformed."""
    try:
        at = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if at is None:
        return None
    return in_utc(at if at.tzinfo is not None else at.replace(tzinfo=UTC))


def _floor(at: datetime, step: timedelta) -> datetime:
    seconds = step.total_seconds()
    return datetime.fromtimestamp(at.timestamp() // seconds * seconds, UTC)


def _ceil(at: datetime, step: timedelta) -> datetime:
    return _floor(at - timedelta(microseconds=1), step) + step


def time_range(query: Any, now: datetime) -> tuple[datetime, datetime, str]:
    """``[since, until)`` from the query: ``since``/``until`` times (an incident zoomed in on,
    widened to whole buckets), else ``from``/``to`` days (whole UTC days, either order), else a
    recent range by name ending with the current bucket; and the range's name."""
    first, last = _moment(query.get("since")), _moment(query.get("until"))
    if first and last and first < last and last - first <= MAX_SPAN:
        step = bucket_size(first, last)
        step = bucket_size(_floor(first, step), _ceil(last, step))  # widened: longer buckets?
        return _floor(first, step), _ceil(last, step), ""
    start, end = _day(query.get("from")), _day(query.get("to"))
    if start or end:
        start, end = start or end, end or start
        assert start is not None
        assert end is not None
        if end < start:
            start, end = end, start
        since = datetime.combine(start, time.min, tzinfo=UTC)
        return since, datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC), ""
    name = query.get("range") if query.get("range") in RECENT else DEFAULT_RANGE
    length, align = RECENT[name]
    until = _floor(now, align) + align  # the current bucket included
    return until - length, until, name


def lanes(buckets: list[Bucket]) -> list[Lane]:
    served = [b.requests > b.denials for b in buckets]
    return [
        Lane("Spend", "USD", [b.spend_usd for b in buckets], "#2e7d32", digits=6),
        Lane("Requests", "per bucket", [float(b.requests) for b in buckets], "#417690"),
        Lane(
            "Time to first token",
            "ms",
            [b.ttft_ms for b in buckets],
            "#7b1fa2",
            "line",
            present=served,
        ),
        Lane("Fallbacks", "per bucket", [float(b.fallbacks) for b in buckets], "#ef6c00"),
        Lane("Policy denials", "per bucket", [float(b.denials) for b in buckets], "#c62828"),
    ]


def limit_name(limit: Any) -> str:
    """E.g. "key budget ($0.5, daily)" or "tenant requests per minute limit (100)"."""
    scope = limit.get_scope_display().lower()
    if limit.kind == "budget":
        return (
            f"{scope} budget (${limit.amount.normalize():f}, {limit.get_period_display().lower()})"
        )
    return f"{scope} {limit.get_kind_display().lower()} limit ({limit.amount.normalize():f})"


def marks(user: Any, tenant: Tenant, since: datetime, until: datetime) -> list[Mark]:
    """The range's events as the user may see them. Snapshot versions hold every tenant's
    configuration: others see only a version's number and time, platform admins its reason and
    a link to its changes."""
    platform = is_platform_admin(user)
    out = []
    for s in fleet.published_between(since, until):
        detail = f"snapshot v{s.version} published" + (
            f": {s.reason}" if platform and s.reason else ""
        )
        url = reverse("admin:asc_fleet_policysnapshot_diff", args=[s.version]) if platform else ""
        out.append(Mark(s.created_at, "version", f"v{s.version}", detail, url))
    for c in limits.threshold_crossings(user, tenant.pk, since, until):
        limit = c.limit
        detail = f"{c.threshold:.0%} of the {limit_name(limit)} passed (window {c.window})"
        url = reverse("admin:asc_limits_limit_change", args=[limit.pk])
        out.append(Mark(c.at, "threshold", f"{c.threshold:.0%}", detail, url))
    for o in fleet.circuit_openings(user, tenant.pk, since, until):
        target = (
            f"{o.provider.name if o.provider else '?'}/{o.model.provider_model if o.model else '?'}"
        )
        detail = (
            f"circuit of {target} found open on {o.node_id} by {o.requests} requests, "
            f"last at {o.last_seen_at:%H:%M:%S}"
        )
        out.append(Mark(o.opened_at, "circuit", "circuit open", detail))
    return sorted(out, key=lambda m: m.at)


def tenant_timeline(request: HttpRequest, tenant_id: Any) -> HttpResponse:
    tenant = Tenant.objects.restrict(request.user).filter(pk=tenant_id).first()
    if tenant is None:
        raise Http404("no such tenant")
    since, until, range_name = time_range(request.GET, datetime.now(UTC))
    buckets = timeline(request.user, tenant.pk, since, until)
    events = marks(request.user, tenant, since, until)
    served = [b for b in buckets if b.requests > b.denials]
    weight = sum(b.requests - b.denials for b in served)
    context = {
        **admin.site.each_context(request),
        "title": f"Timeline of {tenant.slug}",
        "tenant": tenant,
        "start": since.date().isoformat(),
        "end": (until - timedelta(microseconds=1)).date().isoformat(),
        "since": since,
        "until": until,
        "range": range_name,
        "ranges": list(RECENT),
        "step": bucket_size(since, until),
        "chart": timeline_chart(
            [b.start for b in buckets], bucket_size(since, until), lanes(buckets), events
        ),
        "legend": legend(),
        "events": events,
        "totals": {
            "requests": sum(b.requests for b in buckets),
            "spend_usd": round(sum(b.spend_usd for b in buckets), 6),
            "denials": sum(b.denials for b in buckets),
            "fallbacks": sum(b.fallbacks for b in buckets),
            "ttft_ms": round(
                sum(b.ttft_ms * (b.requests - b.denials) for b in served) / weight if weight else 0
            ),
        },
    }
    return render(request, "admin/asc/tenant_timeline.html", context)
