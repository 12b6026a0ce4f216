"""The tamper-evident audit trail (DESIGN.md section 5)."""

from __future__ import annotations

from django.db import models

from control_plane.core.ingestion import ingest_xid_field
from control_plane.core.models import ScopedQuerySet, loose_ref


class AuditRecord(models.Model):
    """One decision of a data plane, as received. ``payload`` is the record's exact encoding
    (what its hash covers); the columns are a queryable copy that the verifier checks against
    it. A record past its tenant's retention is purged: content cleared, chain links kept.

    Every index is written by every ingested record, so only reads need one: ``(chain_id,
    seq)`` (unique: the chain, the verifier), ``(tenant, ts)`` (tenant-scoped lists,
    retention), ``ts``, the ingestion order, and the list's filters on key, route and request
    id (equality only: no prefix index). Tenant needs no index of its own (the composite leads
    with it); no read filters on provider, model or credential."""

    chain_id = models.CharField(max_length=200)
    seq = models.PositiveBigIntegerField()
    prev_hash = models.CharField(max_length=64, blank=True)
    hash = models.CharField(max_length=64)
    ts = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=128)
    tenant = loose_ref("asc_tenancy.Tenant", db_index=False)
    key = loose_ref("asc_keys.VirtualKey")
    subject = models.CharField(max_length=200, blank=True)
    route = loose_ref("asc_catalog.Route")
    route_name = models.CharField(max_length=200, blank=True)
    snapshot_version = models.PositiveBigIntegerField(default=0)
    decision = models.CharField(max_length=16)
    reason = models.CharField(max_length=64, blank=True)
    categories = models.JSONField(default=list, blank=True)
    guardrail_action = models.CharField(max_length=16, blank=True)
    provider = loose_ref("asc_catalog.Provider", db_index=False)
    model = loose_ref("asc_catalog.Model", db_index=False)
    credential = loose_ref("asc_catalog.ProviderCredential", db_index=False)
    region = models.CharField(max_length=64, blank=True)
    status_code = models.PositiveSmallIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_nano_usd = models.BigIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(default=0)
    fallbacks = models.JSONField(default=list, blank=True)
    payload = models.BinaryField()
    # False when, on ingest, the record did not extend its chain (seq or prev_hash mismatch).
    chain_ok = models.BooleanField(default=True)
    purged = models.BooleanField(default=False)
    # The writing transaction: the order lists page in (control_plane.core.ingestion).
    ingest_xid = ingest_xid_field()

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["chain_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["chain_id", "seq"], name="one_record_per_seq")
        ]
        indexes = [
            models.Index(fields=["tenant", "ts"]),
            models.Index(fields=["request_id"], name="audit_request_id"),
            models.Index(fields=["ingest_xid", "id"], name="audit_ingest_order"),
        ]

    def __str__(self) -> str:
        return f"{self.chain_id}#{self.seq}"


class AuditChain(models.Model):
    """The head of one chain as ingested so far."""

    chain_id = models.CharField(max_length=200, primary_key=True)
    node_id = models.CharField(max_length=200)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True)
    breaks = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.chain_id


class AuditCheckpoint(models.Model):
    """A signed statement that ``chain_id`` had reached ``seq`` with record hash ``hash``."""

    chain_id = models.CharField(max_length=200)
    seq = models.PositiveBigIntegerField()
    hash = models.CharField(max_length=64)
    created_unix = models.BigIntegerField()
    key_id = models.CharField(max_length=16)
    signature = models.CharField(max_length=128)

    class Meta:
        ordering = ["chain_id", "seq"]

    def __str__(self) -> str:
        return f"{self.chain_id}@{self.seq}"
