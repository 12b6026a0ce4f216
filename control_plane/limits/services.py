"""Writes to limits (``put_limit`` / ``delete_limit``, in the name of the user acting), and
granting leases: the only writer of the lease ledger.

``decide`` is the pure rule; ``acquire`` applies it under a row lock on the (limit, window)
row, so concurrent grants (several gRPC processes against one PostgreSQL) serialize and the
total claimed never passes the limit. A node's claim is what it was granted while its lease
is alive (renewed within ``LEASE_TTL_S``), and only what it reported committed once it has
gone silent (``others_of`` sums the other nodes' claims so): a crashed node's unused slice
comes back after the TTL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Case, Count, F, Q, Sum, When
from django.db.models.functions import Greatest

from control_plane.core.bulk import uuid_or_none
from control_plane.core.services import Actor, delete_row, save_row
from control_plane.limits.models import LeaseHolding, LeaseWindow, Limit
from control_plane.limits.selectors import alerted_thresholds
from shared import windows
from shared.pb import control_pb2

log = logging.getLogger(__name__)

LEASE_TTL_S = 10.0


def put_limit(limit: Limit, *, actor: Actor) -> Limit:
    """A budget or rate limit; its rules (subject matches scope and tenant) in ``Limit.clean``."""
    return save_row(limit, actor=actor)


def delete_limit(limit: Limit, *, actor: Actor) -> None:
    delete_row(limit, actor=actor)


@dataclass(frozen=True)
class Others:
    """What the other nodes hold of one window: their claims, what they reported committed,
    and how many of them have a lease alive."""

    claimed: int
    committed: int
    alive: int


def others_of(row: LeaseWindow, node_id: str, alive_since: datetime) -> Others:
    """Every node but ``node_id`` holding ``row``'s window, summed by the database in one row.
    A node's claim is what it was granted while its lease is alive (renewed since
    ``alive_since``), and only what it reported committed once it has gone silent. (Read as a
    thousand model instances, the holdings of a thousand nodes asking every few seconds were
    a third of the gRPC process's CPU, and the GIL taken from the streams' loop.)"""
    alive = Q(last_seen__gte=alive_since)
    sums = row.holdings.exclude(node_id=node_id).aggregate(
        claimed=Sum(
            Case(When(alive, then=Greatest("granted", "committed")), default=F("committed"))
        ),
        committed=Sum("committed"),
        alive=Count("pk", filter=alive),
    )
    return Others(sums["claimed"] or 0, sums["committed"] or 0, sums["alive"])


def decide(amount: int, claimed: int, granted: int, committed: int, want: int) -> int:
    """The node's new cumulative grant: what it asked for on top of its grant, cut to what the
    other nodes leave of the limit (``claimed``: their claims), and never below what it has
    already committed."""
    room = amount - claimed
    return max(committed, min(granted + max(want, 0), room))


def acquire(
    node_id: str, asks: Sequence[control_pb2.LeaseAsk], now: float
) -> list[control_pb2.LeaseGrant]:
    wanted = [a.limit_id for a in asks if uuid_or_none(a.limit_id)]
    limits = {str(pk): limit for pk, limit in Limit.objects.in_bulk(wanted).items()}
    grants = []
    for ask in asks:
        limit = limits.get(ask.limit_id)
        if limit is None or not limit.enabled:
            grants.append(control_pb2.LeaseGrant(limit_id=ask.limit_id))  # nothing to grant
            continue
        grants.append(_grant(limit, node_id, ask, now))
    return grants


@transaction.atomic
def _grant(
    limit: Limit, node_id: str, ask: control_pb2.LeaseAsk, now: float
) -> control_pb2.LeaseGrant:
    window, ends = windows.window_of(limit.period, limit.time_zone, now)
    row, _ = LeaseWindow.objects.get_or_create(limit=limit, window=window)
    row = LeaseWindow.objects.select_for_update().get(pk=row.pk)  # the lock of this window
    seen = datetime.fromtimestamp(now, UTC)
    alive_since = seen - timedelta(seconds=LEASE_TTL_S)
    mine = LeaseHolding.objects.filter(lease_window=row, node_id=node_id).first()
    if mine is None:
        mine = LeaseHolding(lease_window=row, node_id=node_id)
    if ask.window == window:
        mine.committed = max(mine.committed, ask.committed)
    others = others_of(row, node_id, alive_since)
    amount = limit.units()
    mine.granted = decide(amount, others.claimed, mine.granted, mine.committed, ask.want)
    mine.last_seen = seen
    mine.save()
    claimed = others.claimed + max(mine.granted, mine.committed)  # the node's lease is alive
    _alert(limit, row, others.committed + mine.committed, amount, seen)
    return control_pb2.LeaseGrant(
        limit_id=str(limit.pk),
        window=window,
        granted=mine.granted,
        remaining=max(0, amount - claimed),
        window_ends_in_ms=max(1, int((ends - now) * 1000)) if ends else 0,
        ttl_ms=int(LEASE_TTL_S * 1000),
        nodes=1 + others.alive,
    )


def _alert(limit: Limit, row: LeaseWindow, committed: int, amount: int, at: datetime) -> None:
    """Log and record (with the time, for the tenant's timeline) each alert threshold once per
    window as committed spend passes it."""
    if not amount:
        return
    done = {t for t, _ in alerted_thresholds(row)}
    passed = [t for t in limit.alert_thresholds if committed >= t * amount and t not in done]
    if passed:
        entries = [{"threshold": t, "at": at.isoformat(), "committed": committed} for t in passed]
        row.alerted = [*row.alerted, *entries]
        row.save(update_fields=["alerted"])
        log.warning(
            "limit %s (%s) of tenant %s passed %s of %s in window %s",
            limit.pk, limit.kind, limit.tenant_id, passed, limit.amount, row.window,
        )  # fmt: skip
