"""Publishing snapshots and recording what each data-plane node applied.

Writes anywhere in the configuration call ``control_plane.core.publishing.request_publish``;
this app registers ``enqueue_publish`` there, which runs ``publish_snapshot`` as a Celery task
after the transaction commits. ``publish_snapshot`` is idempotent: when the built policy
hashes like the latest snapshot, nothing new is written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from control_plane.fleet import selectors
from control_plane.fleet.documents import Document, export_document
from control_plane.fleet.models import CircuitOpening, DataPlaneNode, PolicySnapshot
from control_plane.fleet.snapshot_builder import build_policy
from shared.consistency import InconsistentSnapshot, check
from shared.pb import control_pb2, snapshot_pb2
from shared.snapshots import policy_hash

log = logging.getLogger(__name__)


# Each stored version is announced on this channel (PostgreSQL NOTIFY, sent when the storing
# transaction commits): the gRPC processes listen and read it at once (grpc_api/watcher.py).
PUBLISHED_CHANNEL = "asc_snapshot_published"


def enqueue_publish(reason: str, user_id: int | None = None) -> None:
    """The publisher ``core.publishing`` calls after a commit: the publish as a Celery task
    (eager in-process on the embedded default)."""
    from control_plane.fleet.tasks import publish_snapshot_task

    publish_snapshot_task.delay(reason, user_id)


@dataclass(frozen=True)
class Published:
    snapshot: PolicySnapshot
    created: bool


def publish_snapshot(reason: str = "", user_id: int | None = None) -> Published:
    """Build, check and store a new snapshot version when the policy changed.

    An inconsistent policy is never stored: its problems are logged and raised as
    ``InconsistentSnapshot`` (not retried: the rows must change first), and the data planes
    keep the latest snapshot. The configuration document that produced the policy is stored
    with it (``fleet.documents``), for rollbacks."""
    policy, document = _read_configuration()
    digest = policy_hash(policy)
    for _ in range(5):  # another publisher may take the next version first: rebuild on top
        latest = selectors.latest_published()
        if latest is not None and latest.hash == digest:
            return Published(latest, created=False)
        version = (latest.version if latest else 0) + 1
        snapshot = snapshot_pb2.Snapshot(
            version=version, hash=digest, created_unix_ms=int(time.time() * 1000), policy=policy
        )
        payload = snapshot.SerializeToString(deterministic=True)
        try:
            with transaction.atomic():
                row = PolicySnapshot.objects.create(
                    version=version,
                    hash=digest,
                    payload=payload,
                    created_by_id=user_id,
                    reason=reason[:200],
                    size_bytes=len(payload),
                    document=document.text if document else "",
                    credential_ids=document.credential_ids if document else {},
                )
                _announce(version)
        except IntegrityError:
            continue
        log.info(
            "published snapshot v%d (%s, %d bytes): %s", version, digest[:12], len(payload), reason
        )
        return Published(row, created=True)
    raise RuntimeError("could not take a snapshot version after 5 attempts")


def _announce(version: int) -> None:
    """Notify the listening gRPC processes of ``version`` when the current transaction
    commits (nothing on SQLite: they poll)."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [PUBLISHED_CHANNEL, str(version)])


def _read_configuration() -> tuple[snapshot_pb2.Policy, Document | None]:
    """The policy and the document, read from one view of the database (repeatable read on
    PostgreSQL, unless already inside a transaction), so the document stored with a version is
    the one that built it."""
    connection = transaction.get_connection()
    outer = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _consistent_policy(), export_document()


def _consistent_policy() -> snapshot_pb2.Policy:
    rows = selectors.policy_rows()
    try:
        policy = build_policy(rows)
    except (ValueError, TypeError) as exc:  # a value the snapshot cannot hold (out of range)
        problem = InconsistentSnapshot([f"the configuration cannot be encoded: {exc}"])
        log.error("snapshot not published: %s", problem)
        raise problem from exc
    try:
        check(policy)
    except InconsistentSnapshot as exc:
        log.error("snapshot not published: %s", exc)
        raise
    return policy


def load_snapshot(row: PolicySnapshot) -> snapshot_pb2.Snapshot:
    return snapshot_pb2.Snapshot.FromString(bytes(row.payload))


def node_connected(node: Any, version: int, digest: str) -> None:
    """A node opened its stream, announcing what it holds (``node``: an asc.v1.Node)."""
    now = timezone.now()
    DataPlaneNode.objects.update_or_create(
        node_id=node.id,
        defaults={
            "region": node.region,
            "software_version": node.software_version,
            "boot_id": node.boot_id,
            "applied_version": version,
            "applied_hash": digest,
            "connected": True,
            "last_seen": now,
        },
    )


def node_acked(node_id: str, version: int, digest: str) -> None:
    nodes_acked([node_id], version, digest)


def nodes_acked(node_ids: list[str], version: int, digest: str) -> None:
    """Nodes that ACKed the same version, in one UPDATE (the gRPC process batches them)."""
    now = timezone.now()
    DataPlaneNode.objects.filter(node_id__in=node_ids).update(
        applied_version=version, applied_hash=digest, last_ack_at=now, last_seen=now
    )


def node_nacked(node_id: str, error: str) -> None:
    now = timezone.now()
    DataPlaneNode.objects.filter(node_id=node_id).update(
        last_nack_at=now, last_error=error[:2000], last_seen=now
    )


def node_disconnected(node_id: str) -> None:
    DataPlaneNode.objects.filter(node_id=node_id).update(connected=False, last_seen=timezone.now())


def node_seen(node_id: str, spool_depth: int | None = None) -> None:
    changes: dict[str, object] = {"last_seen": timezone.now()}
    if spool_depth is not None:
        changes["spool_depth"] = spool_depth
    DataPlaneNode.objects.filter(node_id=node_id).update(**changes)


CIRCUIT_OPEN = "circuit_open"  # the attempt outcome of a target skipped by its open breaker


@dataclass(frozen=True)
class CircuitSighting:
    tenant_id: str
    provider_id: str
    model_id: str
    first: datetime
    last: datetime
    requests: int


def circuit_sightings(events: Iterable[control_pb2.UsageEvent]) -> list[CircuitSighting]:
    """Pure: the open circuits a batch's requests ran into, per tenant and target (a request
    whose attempts include one skipped with ``circuit_open``). Costs a look at each event's
    fallbacks, which are empty for almost every request."""
    seen: dict[tuple[str, str, str], tuple[int, int, int]] = {}
    for event in events:
        if not event.fallbacks:
            continue
        for attempt in event.fallbacks:
            if attempt.outcome != CIRCUIT_OPEN:
                continue
            key = (event.tenant_id, attempt.provider_id, attempt.model_id)
            first, last, count = seen.get(key, (event.ts_unix_ms, event.ts_unix_ms, 0))
            seen[key] = (min(first, event.ts_unix_ms), max(last, event.ts_unix_ms), count + 1)
    return [
        CircuitSighting(*key, _utc(first), _utc(last), count)
        for key, (first, last, count) in seen.items()
    ]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def circuits_seen(node_id: str, sightings: list[CircuitSighting]) -> None:
    """Record open circuits a node's requests ran into: a sighting extends the latest run of
    the same node, tenant and target when within ``selectors.CIRCUIT_QUIET`` of it, else
    starts a new one (an opening marked on the tenant's timeline)."""
    for s in sightings:
        ids = {"tenant_id": s.tenant_id or None, "provider_id": s.provider_id or None}
        with transaction.atomic():
            run = (
                CircuitOpening.objects.select_for_update()
                .filter(node_id=node_id, model_id=s.model_id or None, **ids)
                .filter(last_seen_at__gte=s.first - selectors.CIRCUIT_QUIET)
                .order_by("-last_seen_at")
                .first()
            )
            if run is None:
                CircuitOpening.objects.create(
                    node_id=node_id,
                    model_id=s.model_id or None,
                    opened_at=s.first,
                    last_seen_at=s.last,
                    requests=s.requests,
                    **ids,
                )
                continue
            run.opened_at = min(run.opened_at, s.first)
            run.last_seen_at = max(run.last_seen_at, s.last)
            run.requests += s.requests
            run.save(update_fields=["opened_at", "last_seen_at", "requests"])
