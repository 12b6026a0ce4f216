"""Writes to the audit trail: ingest (chain-checked), checkpoints, retention.

A retention purge clears a record's content and keeps the rest, its payload replaced by the
record without its content (``shared.audit.purged``): the chain hashes the content's digest,
not the content, so the purged record still verifies and its remaining fields stay checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction

from control_plane.audit import signing
from control_plane.audit.models import AuditChain, AuditCheckpoint, AuditRecord
from control_plane.core.bulk import insert_ignoring_conflicts, uuid_or_none
from control_plane.tenancy.models import Tenant
from shared.audit import checkpoint_message, hashes_hold, purged
from shared.pb import control_pb2

log = logging.getLogger(__name__)

CONTENT_FIELDS = {  # what retention clears
    "request_id": "",
    "subject": "",
    "route_name": "",
    "categories": [],
    "fallbacks": [],
    "payload": b"",
}


def to_row(record: control_pb2.AuditRecord, chain_ok: bool) -> dict[str, Any]:
    """An AuditRecord row (attribute name -> value) straight from the data plane's record."""
    e = record.event
    return {
        "chain_id": record.chain_id,
        "seq": record.seq,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
        "ts": datetime.fromtimestamp(e.ts_unix_ms / 1000, tz=UTC),
        "request_id": e.request_id[:128],
        "tenant_id": uuid_or_none(e.tenant_id),
        "key_id": uuid_or_none(e.key_id),
        "subject": e.subject[:200],
        "route_id": uuid_or_none(e.route_id),
        "route_name": e.route_name[:200],
        "snapshot_version": e.snapshot_version,
        "decision": record.decision[:16],
        "reason": record.reason[:64],
        "categories": list(record.categories),
        "guardrail_action": record.guardrail_action[:16],
        "provider_id": uuid_or_none(e.provider_id),
        "model_id": uuid_or_none(e.model_id),
        "credential_id": uuid_or_none(e.credential_id),
        "region": e.region[:64],
        "status_code": e.status_code,
        "prompt_tokens": e.prompt_tokens,
        "completion_tokens": e.completion_tokens,
        "cost_nano_usd": e.cost_nano_usd,
        "latency_ms": e.latency_ms,
        "ttft_ms": e.ttft_ms,
        "fallbacks": [
            {"model_id": a.model_id, "provider_id": a.provider_id, "outcome": a.outcome}
            for a in e.fallbacks
        ],
        "payload": record.SerializeToString(deterministic=True),
        "chain_ok": chain_ok,
        "purged": False,
    }


@dataclass
class Head:
    """Where a chain stands: its last record's seq and hash, and the breaks seen so far (the
    fields of an ``AuditChain`` row, which ``link_records`` takes as well)."""

    last_seq: int
    last_hash: str
    breaks: int


def link_records(
    records: Sequence[control_pb2.AuditRecord], hashes_ok: Sequence[bool], heads: dict[str, Any]
) -> list[bool]:
    """Check, in one pass in chain order, that each record extends its chain (``heads``, by
    chain id, moved along) and that its hash held (``hashes_ok``, from
    ``shared.audit.hashes_hold``): whether each record is sound. A record that is not is
    counted on its chain's head and logged."""
    oks = []
    for record, hash_ok in zip(records, hashes_ok, strict=True):
        head = heads[record.chain_id]
        ok = hash_ok and record.seq == head.last_seq + 1 and record.prev_hash == head.last_hash
        if not ok:
            head.breaks += 1
            log.error(
                "audit chain %s broken at seq %d (head %d)",
                record.chain_id,
                record.seq,
                head.last_seq,
            )
        if record.seq > head.last_seq:
            head.last_seq, head.last_hash = record.seq, record.hash
        oks.append(ok)
    return oks


def append_records(records: Sequence[control_pb2.AuditRecord], node_id: str) -> int:
    """Store records in chain order, checking each extends its chain; call inside the ingest
    transaction. A record that breaks its chain is stored all the same (nothing is lost),
    flagged, counted on the chain and logged. (On PostgreSQL, ingestion stores them through
    ``usage.copy_ingest`` with the same checks.)"""
    heads: dict[str, Any] = {}
    for chain_id in sorted({r.chain_id for r in records}):
        heads[chain_id], _ = AuditChain.objects.select_for_update().get_or_create(
            chain_id=chain_id, defaults={"node_id": node_id}
        )
    oks = link_records(records, hashes_hold(records), heads)
    rows = [to_row(record, ok) for record, ok in zip(records, oks, strict=True)]
    insert_ignoring_conflicts(AuditRecord, rows, ["chain_id", "seq"])
    for head in heads.values():
        head.save()
    return len(rows)


def make_checkpoints(now: float | None = None) -> list[AuditCheckpoint]:
    """Sign the head of every chain that moved since its last checkpoint."""
    created_unix = int(now if now is not None else time.time())
    made = []
    for chain in AuditChain.objects.filter(last_seq__gt=0):
        last = AuditCheckpoint.objects.filter(chain_id=chain.chain_id).order_by("-seq").first()
        if last is not None and last.seq >= chain.last_seq:
            continue
        message = checkpoint_message(chain.chain_id, chain.last_seq, chain.last_hash, created_unix)
        key_id, signature = signing.sign(message)
        made.append(
            AuditCheckpoint.objects.create(
                chain_id=chain.chain_id,
                seq=chain.last_seq,
                hash=chain.last_hash,
                created_unix=created_unix,
                key_id=key_id,
                signature=signature,
            )
        )
    return made


def purge_expired(now: datetime, chunk: int = 1000) -> int:
    """Clear the content of records older than their tenant's retention (only those: the
    verifier checks each purge against the policy); chain links and the rest of each record
    stay, so the chain still verifies."""
    count = 0
    for tenant in Tenant.objects.filter(audit_retention_days__isnull=False):
        cutoff = now - timedelta(days=tenant.audit_retention_days or 0)
        expired = AuditRecord.objects.filter(tenant=tenant, ts__lt=cutoff, purged=False)
        with transaction.atomic():
            batch: list[AuditRecord] = []
            for row in expired.select_for_update().only("id", "payload").iterator(chunk):
                batch.append(_purge(row))
                if len(batch) == chunk:
                    count += _save_purged(batch)
            count += _save_purged(batch)
    return count


def _purge(row: AuditRecord) -> AuditRecord:
    record = control_pb2.AuditRecord.FromString(bytes(row.payload or b""))
    for name, value in CONTENT_FIELDS.items():
        setattr(row, name, value)
    # Records sealed before content digests cannot keep a checkable remainder: no payload.
    kept = purged(record) if record.content_sha256 else None
    row.payload = kept.SerializeToString(deterministic=True) if kept is not None else b""
    row.purged = True
    return row


def _save_purged(batch: list[AuditRecord]) -> int:
    AuditRecord.objects.bulk_update(batch, ["purged", *CONTENT_FIELDS])
    saved = len(batch)
    batch.clear()
    return saved
