from __future__ import annotations

import uuid

from django.db import models

from control_plane.core.ingestion import ingest_xid_field
from control_plane.core.models import ScopedQuerySet, loose_ref


class UsageRecord(models.Model):
    """One request that got past authentication, as reported by a data plane.

    Every index is written by every ingested row, so only reads need one: ``(tenant, ts)``
    (tenant-scoped lists, timeline, spend of a tenant), ``(key, ts)`` (?key=, a developer's
    own keys), ``ts`` (all tenants over a range: dashboard, spend), route, model and provider
    (the list's filters), the ingestion order, the roll-up's pending rows, and the request id
    (unique: an event is stored once; a plain constraint, since no read matches a prefix
    of it). Tenant and key need no index of their own (the composites lead with them), nor
    does the credential (no read filters on it)."""

    request_id = models.CharField(max_length=128)
    ts = models.DateTimeField(db_index=True)
    node_id = models.CharField(max_length=200)
    tenant = loose_ref("asc_tenancy.Tenant", db_index=False)
    key = loose_ref("asc_keys.VirtualKey", db_index=False)
    route = loose_ref("asc_catalog.Route")
    route_name = models.CharField(max_length=200, blank=True)
    model = loose_ref("asc_catalog.Model")
    provider = loose_ref("asc_catalog.Provider")
    credential = loose_ref("asc_catalog.ProviderCredential", db_index=False)
    region = models.CharField(max_length=64, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_prompt_tokens = models.PositiveIntegerField(default=0)
    cost_nano_usd = models.BigIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(default=0)
    snapshot_version = models.PositiveBigIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(default=200)
    stream = models.BooleanField(default=False)
    error_code = models.CharField(max_length=64, blank=True)
    fallbacks = models.JSONField(default=list, blank=True)
    # The request's validated tags (request, key and project): {"feature": "summarizer"}.
    tags = models.JSONField(default=dict, blank=True)
    # Served from the response cache: cost_nano_usd is 0, cost_saved_nano_usd what it saved.
    cache_hit = models.BooleanField(default=False)
    cost_saved_nano_usd = models.BigIntegerField(default=0)
    # Counted into SpendDaily yet (by usage.services.rollup_spend).
    rolled_up = models.BooleanField(default=False)
    # The writing transaction: the order lists page in (control_plane.core.ingestion).
    ingest_xid = ingest_xid_field()

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [models.UniqueConstraint(fields=["request_id"], name="one_usage_per_request")]
        indexes = [
            models.Index(fields=["tenant", "ts"]),
            models.Index(fields=["key", "ts"]),
            models.Index(fields=["ingest_xid", "id"], name="usage_ingest_order"),
            models.Index(
                fields=["rolled_up"], condition=models.Q(rolled_up=False), name="usage_to_roll_up"
            ),
        ]

    def __str__(self) -> str:
        return self.request_id


class UsageBatchReceipt(models.Model):
    """One accepted usage batch: the key of exactly-once ingestion (a replayed batch id is
    acknowledged and skipped)."""

    batch_id = models.CharField(max_length=200, primary_key=True)
    node_id = models.CharField(max_length=200)
    received_at = models.DateTimeField(auto_now_add=True)
    events = models.PositiveIntegerField()

    def __str__(self) -> str:
        return self.batch_id


NONE = uuid.UUID(int=0)  # "no key" / "no route" in roll-ups (NULLs would defeat the unique key)


class SpendDaily(models.Model):
    """Spend and tokens per UTC day, tenant, key and route, kept by ``rollup_spend``."""

    day = models.DateField()
    tenant_id = models.UUIDField()
    key_id = models.UUIDField(default=NONE)
    route_id = models.UUIDField(default=NONE)
    requests = models.PositiveBigIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost_nano_usd = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tenant_id", "key_id", "route_id"], name="one_rollup_row"
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.tenant_id}"
