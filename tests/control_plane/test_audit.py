"""The audit trail: chain checks on ingest, the offline verifier against each kind of
tampering, checkpoints, retention and export."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from control_plane.audit.models import AuditChain, AuditCheckpoint, AuditRecord
from control_plane.audit.services import make_checkpoints, to_row
from control_plane.tenancy.models import Tenant
from control_plane.usage.services import ingest_batch
from shared.audit import seal
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

CHAIN = "dp-1:boot-1"


def chain(tenant_id: str, n: int, start: int = 1, prev: str = "") -> list[control_pb2.AuditRecord]:
    out = []
    now_ms = int(time.time() * 1000)
    for seq in range(start, start + n):
        event = control_pb2.UsageEvent(
            request_id=f"req-{seq}",
            ts_unix_ms=now_ms + seq,
            tenant_id=tenant_id,
            subject=f"person-{seq}@example.com",
            route_name="chat",
            cost_nano_usd=1000 * seq,
            status_code=200,
            snapshot_version=7,
        )
        record = control_pb2.AuditRecord(
            chain_id=CHAIN,
            event=event,
            decision="allowed",
            categories=["email"] if seq % 2 else [],
            guardrail_action="redact" if seq % 2 else "",
        )
        prev = seal(record, prev, seq).hash
        out.append(record)
    return out


def ingest(records: list[control_pb2.AuditRecord], batch: str) -> None:
    ingest_batch(
        control_pb2.UsageBatch(
            batch_id=batch,
            node_id="dp-1",
            events=[r.event for r in records],
            audit=records,
        )
    )


@pytest.fixture
def tenant() -> Tenant:
    return factories.tenant("acme")


@pytest.fixture
def stored(tenant: Tenant) -> list[control_pb2.AuditRecord]:
    records = chain(str(tenant.id), 6)
    ingest(records[:3], "b1")
    ingest(records[3:], "b2")
    make_checkpoints()
    return records


def verify_fails_at(expected: str) -> str:
    with pytest.raises(CommandError) as info:
        call_command("verify_audit")
    assert expected in str(info.value), str(info.value)
    return str(info.value)


def test_intact_trail_verifies(stored: list[control_pb2.AuditRecord]) -> None:
    call_command("verify_audit")
    assert AuditRecord.objects.filter(chain_ok=True).count() == 6
    head = AuditChain.objects.get()
    assert (head.last_seq, head.last_hash, head.breaks) == (6, stored[-1].hash, 0)
    assert AuditCheckpoint.objects.get().seq == 6


def test_a_replayed_batch_adds_nothing(stored: list[control_pb2.AuditRecord]) -> None:
    ingest(stored[:3], "b1")
    assert AuditRecord.objects.count() == 6
    call_command("verify_audit")


def test_a_record_that_breaks_its_chain_on_ingest_is_kept_and_flagged(tenant: Tenant) -> None:
    records = chain(str(tenant.id), 3)
    ingest([records[0], records[2]], "b1")  # record 2 never arrives
    assert list(AuditRecord.objects.values_list("seq", "chain_ok")) == [(1, True), (3, False)]
    assert AuditChain.objects.get().breaks == 1


def test_changed_field_is_caught(stored: list[control_pb2.AuditRecord]) -> None:
    AuditRecord.objects.filter(seq=4).update(cost_nano_usd=1)
    verify_fails_at(f"{CHAIN}#4 (request req-4): field cost_nano_usd changed")


def test_changed_payload_is_caught(stored: list[control_pb2.AuditRecord]) -> None:
    forged = control_pb2.AuditRecord()
    forged.CopyFrom(stored[1])
    forged.decision = "refused"
    AuditRecord.objects.filter(seq=2).update(
        payload=forged.SerializeToString(deterministic=True), decision="refused"
    )
    verify_fails_at(f"{CHAIN}#2 (request req-2): payload does not match its hash")


def test_deleted_record_is_caught(stored: list[control_pb2.AuditRecord]) -> None:
    AuditRecord.objects.filter(seq=3).delete()
    verify_fails_at(f"{CHAIN}#3: missing: record 3 deleted")


def test_swapped_records_are_caught(stored: list[control_pb2.AuditRecord]) -> None:
    AuditRecord.objects.filter(seq=2).update(seq=1000)
    AuditRecord.objects.filter(seq=5).update(seq=2)
    AuditRecord.objects.filter(seq=1000).update(seq=5)
    verify_fails_at(f"{CHAIN}#2 (request req-5): payload is record {CHAIN}#5")


def test_truncated_chain_is_caught(stored: list[control_pb2.AuditRecord]) -> None:
    AuditRecord.objects.filter(seq__gte=5).delete()
    verify_fails_at(f"{CHAIN}#5: truncated: checkpoint vouches for records up to 6")


def test_replaced_checkpoint_is_caught(stored: list[control_pb2.AuditRecord]) -> None:
    AuditCheckpoint.objects.update(hash="0" * 64)
    verify_fails_at(f"{CHAIN}#6: checkpoint signature invalid")


def test_rewritten_chain_with_a_valid_looking_tail_is_caught(tenant: Tenant) -> None:
    records = chain(str(tenant.id), 4)
    ingest(records, "b1")
    make_checkpoints()
    AuditRecord.objects.all().delete()
    forged, prev = chain(str(tenant.id), 4), ""  # a whole new, self-consistent chain
    for r in forged:
        r.event.cost_nano_usd = 0
        prev = seal(r, prev, r.seq).hash
    AuditRecord.objects.bulk_create([AuditRecord(**to_row(r, chain_ok=True)) for r in forged])
    verify_fails_at(f"{CHAIN}#4: record differs from the signed checkpoint")


def _body(response: Any) -> str:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content).decode()


def test_export_jsonl_and_csv_by_tenant(
    stored: list[control_pb2.AuditRecord], api: APIClient
) -> None:
    tenant = Tenant.objects.get(slug="acme")
    other = factories.tenant("other")
    ingest([], "b3")
    make_checkpoints()
    *records, last = _body(api.get(f"/api/v1/audit/export/?tenant={tenant.id}")).splitlines()
    lines = [json.loads(line) for line in records]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[0]["categories"] == ["email"]
    assert lines[0]["subject"] == "person-1@example.com"
    trailer = json.loads(last)["trailer"]
    assert trailer["count"] == 6
    assert (
        trailer["sha256"] == hashlib.sha256("".join(r + "\n" for r in records).encode()).hexdigest()
    )
    [span] = trailer["chains"]
    head = AuditChain.objects.get()
    assert span["chain_id"] == CHAIN
    assert (span["first_seq"], span["last_seq"]) == (1, 6)
    assert span["last_hash"] == head.last_hash == span["head"]["hash"]
    checkpoint = AuditCheckpoint.objects.get()
    assert span["checkpoint"]["seq"] == 6
    assert span["checkpoint"]["hash"] == checkpoint.hash
    assert span["checkpoint"]["signature"] == checkpoint.signature
    csv_lines = _body(api.get(f"/api/v1/audit/export/?tenant={tenant.id}&as=csv")).splitlines()
    assert csv_lines[0].startswith("chain_id,seq,hash")
    assert len(csv_lines) == 1 + 6 + 1  # header, records, trailer
    assert csv_lines[-1].startswith("# trailer ")
    assert json.loads(csv_lines[-1].removeprefix("# trailer "))["count"] == 6
    assert _body(api.get(f"/api/v1/audit/export/?tenant={tenant.id}&format=csv")).splitlines() == (
        csv_lines
    )
    [empty] = _body(api.get(f"/api/v1/audit/export/?tenant={other.id}")).splitlines()
    assert json.loads(empty)["trailer"]["count"] == 0
    assert json.loads(empty)["trailer"]["chains"] == []
    assert api.get(f"/api/v1/audit/export/?tenant={tenant.id}&as=xml").status_code == 400
    assert api.get(f"/api/v1/audit/export/?tenant={tenant.id}&format=xml").status_code == 406
    assert api.get("/api/v1/audit/export/?since=yesterday").status_code == 400
