"""Reads over limits: the alert thresholds budgets and rate limits passed, and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from control_plane.limits.models import LeaseWindow, Limit


def alerted_thresholds(row: LeaseWindow) -> list[tuple[float, datetime | None]]:
    """The thresholds a window has passed and when: ``alerted`` holds ``{"threshold", "at",
    "committed"}`` entries (bare fractions, without a time, in windows alerted before)."""
    out: list[tuple[float, datetime | None]] = []
    for entry in row.alerted:
        if isinstance(entry, dict):
            out.append((float(entry["threshold"]), datetime.fromisoformat(entry["at"])))
        else:
            out.append((float(entry), None))
    return out


@dataclass(frozen=True)
class Crossing:
    at: datetime
    limit: Limit
    window: str
    threshold: float


def threshold_crossings(
    user: Any, tenant_id: Any, since: datetime, until: datetime
) -> list[Crossing]:
    """The alert thresholds one tenant's limits passed in ``[since, until)``, as the user may
    see the limits, oldest first. Windows are picked by their limits' tenant; only windows
    alerted at all are loaded."""
    windows = (
        LeaseWindow.objects.filter(
            limit__in=Limit.objects.restrict(user), limit__tenant_id=tenant_id
        )
        .exclude(alerted=[])
        .select_related("limit")
    )
    found = [
        Crossing(at, w.limit, w.window, threshold)
        for w in windows
        for threshold, at in alerted_thresholds(w)
        if at is not None and since <= at < until
    ]
    return sorted(found, key=lambda c: c.at)
