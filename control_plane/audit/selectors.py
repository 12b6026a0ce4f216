from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from django.utils import timezone

from control_plane.audit import signing
from control_plane.audit.models import AuditChain, AuditCheckpoint, AuditRecord
from control_plane.audit.verify import Problem, verify_chain
from control_plane.tenancy.models import Tenant


def verify_all(chunk: int = 5000, now: datetime | None = None) -> Iterator[Problem]:
    """Verify every stored chain against its checkpoints, chain by chain, and every purge
    against its tenant's retention policy as of ``now``."""
    public = signing.private_key().public_key()
    now = now or timezone.now()
    retention_days = {
        str(pk): days
        for pk, days in Tenant.objects.filter(audit_retention_days__isnull=False).values_list(
            "pk", "audit_retention_days"
        )
    }

    def check(message: bytes, signature: str) -> bool:
        return signing.verify(public, message, signature)

    chain_ids = set(AuditChain.objects.values_list("chain_id", flat=True))
    chain_ids |= set(AuditRecord.objects.values_list("chain_id", flat=True).distinct())
    for chain_id in sorted(chain_ids):
        rows = list(AuditRecord.objects.filter(chain_id=chain_id).order_by("seq").iterator(chunk))
        checkpoints = list(AuditCheckpoint.objects.filter(chain_id=chain_id).order_by("seq"))
        yield from verify_chain(
            chain_id, rows, checkpoints, check, retention_days=retention_days, now=now
        )
