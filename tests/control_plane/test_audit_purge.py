"""Retention purges that can be verified: a purge removes a record's content and keeps a
payload whose hash still recomputes, so what is left stays checked; the verifier also checks
that each purge was allowed (the tenant has a retention policy and the record is older than
it). A purge outside policy, a purged record edited, or a recent record flipped to purged all
make ``verify_audit`` fail."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from control_plane.audit.models import AuditRecord
from control_plane.audit.services import make_checkpoints, purge_expired
from control_plane.tenancy.models import Tenant
from control_plane.usage.services import ingest_batch
from shared.audit import content_intact, purged, record_hash, seal
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

CHAIN = "dp-1:boot-1"
DAY_MS = 86_400_000


def record(tenant_id: str, seq: int, ts_ms: int) -> control_pb2.AuditRecord:
    event = control_pb2.UsageEvent(
        request_id=f"req-{seq}",
        ts_unix_ms=ts_ms,
        tenant_id=tenant_id,
        subject=f"person-{seq}@example.com",
        route_name="chat",
        cost_nano_usd=1000 * seq,
        status_code=200,
    )
    event.fallbacks.add(model_id="m", provider_id="p", outcome="timeout")
    return control_pb2.AuditRecord(
        chain_id=CHAIN, event=event, decision="allowed", categories=["email"]
    )


@pytest.fixture
def tenant() -> Tenant:
    return factories.tenant("acme")


@pytest.fixture
def aged(tenant: Tenant) -> list[control_pb2.AuditRecord]:
    """Six records: four 40 days old, then two of today, under a 30-day retention policy."""
    now_ms = int(time.time() * 1000)
    records, prev = [], ""
    for seq in range(1, 7):
        r = record(str(tenant.id), seq, now_ms - (40 * DAY_MS if seq <= 4 else 0) + seq)
        prev = seal(r, prev, seq).hash
        records.append(r)
    ingest_batch(
        control_pb2.UsageBatch(
            batch_id="b1", node_id="dp-1", events=[r.event for r in records], audit=records
        )
    )
    make_checkpoints()
    tenant.audit_retention_days = 30
    tenant.save()
    return records


def verify_fails_at(expected: str) -> None:
    with pytest.raises(CommandError) as info:
        call_command("verify_audit")
    assert expected in str(info.value), str(info.value)


def test_the_chain_hashes_the_contents_digest_so_a_purged_copy_keeps_the_hash() -> None:
    r = seal(record("t", 1, 1), "", 1)
    kept = purged(r)
    assert record_hash(kept) == r.hash
    assert (kept.event.subject, list(kept.categories), kept.decision) == ("", [], "allowed")
    edited = control_pb2.AuditRecord()
    edited.CopyFrom(r)
    edited.event.subject = "someone-else@example.com"
    assert record_hash(edited) == r.hash, "the digest stands for the content in the hash"
    assert not content_intact(edited), "and the content no longer matches the digest"


def test_a_legal_purge_clears_the_content_and_verifies(
    aged: list[control_pb2.AuditRecord],
) -> None:
    assert purge_expired(timezone.now()) == 4
    gone = AuditRecord.objects.filter(purged=True)
    assert sorted(gone.values_list("seq", flat=True)) == [1, 2, 3, 4]
    assert set(gone.values_list("subject", "request_id", "route_name")) == {("", "", "")}
    assert all(b"person-" not in bytes(row.payload) for row in gone)
    assert AuditRecord.objects.get(seq=5).subject == "person-5@example.com"
    call_command("verify_audit")
    assert purge_expired(timezone.now()) == 0, "a purge is done once"


def test_a_purged_record_edited_is_caught(aged: list[control_pb2.AuditRecord]) -> None:
    purge_expired(timezone.now())
    AuditRecord.objects.filter(seq=2).update(cost_nano_usd=1)
    verify_fails_at(f"{CHAIN}#2: field cost_nano_usd changed")
    AuditRecord.objects.filter(seq=2).update(cost_nano_usd=2000, decision="refused")
    verify_fails_at(f"{CHAIN}#2: field decision changed")
    AuditRecord.objects.filter(seq=2).update(decision="allowed", hash="f" * 64)
    verify_fails_at(f"{CHAIN}#2: hash columns differ from the payload")


def test_a_recent_record_flipped_to_purged_and_edited_is_caught(
    aged: list[control_pb2.AuditRecord],
) -> None:
    """The defect: a purged record was not checked at all, nor whether the purge was allowed."""
    AuditRecord.objects.filter(seq=5).update(purged=True, decision="refused", cost_nano_usd=0)
    verify_fails_at(f"{CHAIN}#5 (request req-5): marked purged, but its payload is not a purged")


def test_a_recent_record_purged_by_hand_is_caught(aged: list[control_pb2.AuditRecord]) -> None:
    """A forger who also rewrites the payload to the purged form: the hash still holds, the
    policy does not allow it."""
    row = AuditRecord.objects.get(seq=5)
    kept = purged(control_pb2.AuditRecord.FromString(bytes(row.payload)))
    AuditRecord.objects.filter(seq=5).update(
        purged=True,
        payload=kept.SerializeToString(deterministic=True),
        request_id="",
        subject="",
        route_name="",
        categories=[],
        fallbacks=[],
    )
    verify_fails_at(f"{CHAIN}#5: purged before its tenant's retention of 30 days had passed")


def test_a_purge_the_policy_does_not_allow_is_caught(
    aged: list[control_pb2.AuditRecord], tenant: Tenant
) -> None:
    purge_expired(timezone.now() + timedelta(days=31))  # today's records too, 31 days early
    verify_fails_at(f"{CHAIN}#5: purged before its tenant's retention of 30 days had passed")
    tenant.audit_retention_days = None
    tenant.save()
    verify_fails_at(f"{CHAIN}#1: purged, but its tenant has no retention policy")


def test_a_record_made_to_look_old_is_caught(aged: list[control_pb2.AuditRecord]) -> None:
    AuditRecord.objects.filter(seq=5).update(ts=timezone.now() - timedelta(days=60))
    verify_fails_at(f"{CHAIN}#5 (request req-5): field ts changed")


def test_a_purge_without_a_mark_is_caught(aged: list[control_pb2.AuditRecord]) -> None:
    """What purges did before content digests: the payload gone, nothing left to check."""
    AuditRecord.objects.filter(seq=1).update(purged=True, payload=b"", subject="")
    verify_fails_at(f"{CHAIN}#1 (request req-1): purged without a purge mark")


def test_ingest_flags_a_record_whose_content_does_not_match_its_digest(tenant: Tenant) -> None:
    r = seal(record(str(tenant.id), 1, int(time.time() * 1000)), "", 1)
    r.event.subject = "changed-after-sealing@example.com"
    ingest_batch(control_pb2.UsageBatch(batch_id="b", node_id="dp-1", audit=[r]))
    assert AuditRecord.objects.get().chain_ok is False
