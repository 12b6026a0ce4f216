from __future__ import annotations

from django.conf import settings
from django.db import models

from control_plane.core.models import ScopedQuerySet, loose_ref


class PolicySnapshot(models.Model):
    """A published policy snapshot: immutable, numbered by ``version`` (monotonic, the primary
    key, so two publishers cannot both take a number), identified by the SHA-256 ``hash`` of
    its canonical encoding. ``payload`` is the serialized ``asc.v1.Snapshot``."""

    version = models.PositiveBigIntegerField(primary_key=True)
    hash = models.CharField(max_length=64)
    payload = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reason = models.CharField(max_length=200, blank=True)
    size_bytes = models.PositiveIntegerField(default=0)
    # The configuration document that produced this version, as asc_export writes it (no
    # secrets), and which credential id each of its credentials had (fleet.documents): what a
    # rollback imports. Empty for versions published before documents were stored.
    document = models.TextField(blank=True)
    credential_ids = models.JSONField(default=dict, blank=True)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version} ({self.hash[:12]})"


class DataPlaneNode(models.Model):
    """What the control plane knows of one data-plane node, from its snapshot stream."""

    node_id = models.CharField(max_length=200, primary_key=True)
    region = models.CharField(max_length=64, blank=True)
    software_version = models.CharField(max_length=64, blank=True)
    boot_id = models.CharField(max_length=64, blank=True)
    applied_version = models.PositiveBigIntegerField(default=0)
    applied_hash = models.CharField(max_length=64, blank=True)
    last_ack_at = models.DateTimeField(null=True, blank=True)
    last_nack_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    connected = models.BooleanField(default=False)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(null=True, blank=True)
    # Usage batches waiting in the node's spool, as its last batch reported.
    spool_depth = models.PositiveIntegerField(default=0)

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["node_id"]

    def __str__(self) -> str:
        return self.node_id


class CircuitOpening(models.Model):
    """A target's circuit breaker found open by a tenant's requests on one node.

    Data planes do not report breaker changes; what reaches the control plane is each
    request's attempts, and an attempt skipped because the breaker was open has the outcome
    ``circuit_open``. One row spans a run of such requests (``fleet.services.circuits_seen``):
    ``opened_at`` is the first request of the run that found it open, ``last_seen_at`` the
    latest; a run ends when none is seen for ``selectors.CIRCUIT_QUIET``."""

    node_id = models.CharField(max_length=200)
    tenant = loose_ref("asc_tenancy.Tenant")
    provider = loose_ref("asc_catalog.Provider")
    model = loose_ref("asc_catalog.Model")
    opened_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    requests = models.PositiveIntegerField(default=0)  # requests that found it open

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["tenant", "opened_at"])]

    def __str__(self) -> str:
        return f"{self.node_id}: {self.provider_id}/{self.model_id} open since {self.opened_at}"
