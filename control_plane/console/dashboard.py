"""The admin's front page: what a platform team wants to see first. Each panel is read through
the selectors of the app owning its data and scoped to the user as that app's pages are: the
fleet (nodes, versions, lag, open circuits) is for platform admins, as the fleet page is;
spend, requests and denials are the usage the user may see (a developer their own keys');
the rollout in flight for those who may see rollouts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.urls import reverse

from control_plane.core.access import is_platform_admin
from control_plane.fleet import selectors as fleet
from control_plane.rollouts import selectors as rollouts
from control_plane.usage import selectors as usage
from control_plane.usage.charts import share_bar, sparkline


@dataclass(frozen=True)
class TenantLine:
    slug: str
    requests: int
    spend_usd: float
    denials: int
    timeline_url: str
    bar: str
    hourly: str  # requests per hour today


@dataclass(frozen=True)
class RolloutLine:
    url: str
    label: str
    state: str
    step: int
    steps: int
    share: int
    canaries: int
    reason: str
    started: datetime


def tenants_today(user: Any, since: datetime, until: datetime) -> list[TenantLine]:
    # Usage of a deleted tenant is not listed.
    totals = [t for t in usage.totals_by_tenant(user, since, until) if t.slug is not None]
    by_spend = any(t.spend_usd > 0 for t in totals)  # else (nothing spent) by requests
    figure = [t.spend_usd if by_spend else float(t.requests) for t in totals]
    peak = max(figure, default=0.0)
    hourly = usage.hourly_requests_by_tenant(user, since, until) if totals else {}
    return [
        TenantLine(
            t.slug or "",
            t.requests,
            t.spend_usd,
            t.denials,
            reverse("admin:asc_tenancy_tenant_timeline", args=[t.tenant_id]),
            share_bar(value, peak),
            sparkline(hourly.get(t.tenant_id, []), label=f"requests per hour today, {t.slug}"),
        )
        for t, value in zip(totals, figure, strict=True)
    ]


def rollout_line(user: Any) -> RolloutLine | None:
    rollout = rollouts.in_flight_for(user)
    if rollout is None:
        return None
    version = rollouts.staged_version(rollout)
    return RolloutLine(
        reverse("admin:asc_rollouts_rollout_change", args=[rollout.pk]),
        f"v{version or '?'} over v{rollout.baseline}",
        rollout.state,
        rollout.step + 1,
        len(rollout.steps),
        int(rollout.steps[rollout.step]),
        len(rollout.canary_nodes),
        rollout.reason,
        rollout.created_at,
    )


def front_page(user: Any, now: datetime) -> dict[str, Any]:
    """The context of the front page's panels."""
    midnight = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    until = now + timedelta(seconds=1)
    tenants = tenants_today(user, midnight, until)
    denials = usage.top_denials(user, midnight, until)
    context: dict[str, Any] = {
        "console": True,
        "today": midnight,
        "tenants_today": tenants,
        "today_totals": {
            "requests": sum(t.requests for t in tenants),
            "spend_usd": sum(t.spend_usd for t in tenants),
            "denials": sum(t.denials for t in tenants),
        },
        "top_denials": [
            (reason, n, share_bar(n, denials[0][1], "#c62828")) for reason, n in denials
        ],
        "usage_url": reverse("admin:asc_usage_usagerecord_changelist"),
        "rollout": rollout_line(user),
        "rollouts_url": reverse("admin:asc_rollouts_rollout_changelist"),
        "fleet": None,
    }
    if is_platform_admin(user):
        nodes = fleet.fleet_status(now)
        context["fleet"] = {
            "nodes": nodes,
            "connected": sum(1 for n in nodes if n.node.connected),
            "behind": sum(1 for n in nodes if n.node.connected and n.lag),
            "latest": fleet.latest_version(),
            "circuits": fleet.open_circuits(now),
            "url": reverse("admin:asc_fleet_dataplanenode_changelist"),
            "snapshots_url": reverse("admin:asc_fleet_policysnapshot_changelist"),
        }
    return context
