"""The per-tenant timeline page: spend, request rate, time to first token, fallbacks and
policy denials on one time axis, for a date range."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from control_plane.tenancy.models import Tenant
from control_plane.usage.charts import line_chart
from control_plane.usage.selectors import timeline


def _day(value: str | None, default: date) -> date:
    try:
        return date.fromisoformat(value) if value else default
    except ValueError:
        return default


def tenant_timeline(request: HttpRequest, tenant_id: Any) -> HttpResponse:
    tenant = Tenant.objects.restrict(request.user).filter(pk=tenant_id).first()
    if tenant is None:
        raise Http404("no such tenant")
    today = datetime.now(UTC).date()
    start = _day(request.GET.get("from"), today - timedelta(days=1))
    end = _day(request.GET.get("to"), today)
    if end < start:
        start, end = end, start
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    buckets = timeline(request.user, tenant.pk, since, until)
    series = [
        ("Spend", "USD", [(b.start, b.spend_usd) for b in buckets]),
        ("Requests", "per bucket", [(b.start, float(b.requests)) for b in buckets]),
        ("Time to first token", "ms", [(b.start, b.ttft_ms) for b in buckets]),
        ("Fallbacks", "per bucket", [(b.start, float(b.fallbacks)) for b in buckets]),
        ("Policy denials", "per bucket", [(b.start, float(b.denials)) for b in buckets]),
    ]
    context = {
        **admin.site.each_context(request),
        "title": f"Timeline of {tenant.slug}",
        "tenant": tenant,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "charts": [line_chart(*s) for s in series],
        "totals": {
            "requests": sum(b.requests for b in buckets),
            "spend_usd": round(sum(b.spend_usd for b in buckets), 6),
            "denials": sum(b.denials for b in buckets),
            "fallbacks": sum(b.fallbacks for b in buckets),
        },
    }
    return render(request, "admin/asc/tenant_timeline.html", context)
