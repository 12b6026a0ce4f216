"""Publishing snapshots and ingesting usage, on the real database."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import load_snapshot, publish_snapshot
from control_plane.keys.services import revoke_keys
from control_plane.usage.models import SpendDaily, UsageBatchReceipt, UsageRecord
from control_plane.usage.services import ingest_batch, rollup_spend
from shared.crypto import Keyring, credential_context, hash_key
from shared.pb import control_pb2
from shared.snapshots import verify
from tests.control_plane import factories

pytestmark = pytest.mark.django_db


def test_publish_numbers_versions_and_skips_unchanged_policy() -> None:
    factories.stack()
    first = publish_snapshot("first")
    assert first.created
    again = publish_snapshot("nothing changed")
    assert not again.created
    assert again.snapshot.version == first.snapshot.version
    factories.tenant("other")
    second = publish_snapshot("tenant added")
    assert second.created
    assert second.snapshot.version == first.snapshot.version + 1
    assert second.snapshot.hash != first.snapshot.hash
    verify(load_snapshot(second.snapshot))  # the stored hash matches the stored policy


def test_snapshot_holds_key_hashes_and_sealed_credentials_only() -> None:
    rows = factories.stack()
    snapshot = load_snapshot(publish_snapshot().snapshot)
    payload = snapshot.SerializeToString()
    assert rows["secret"].encode() not in payload  # type: ignore[attr-defined]
    assert b"sk-upstream-secret-123456" not in payload
    assert snapshot.policy.keys[0].key_hash == hash_key(rows["secret"])  # type: ignore[arg-type]
    cred = snapshot.policy.credentials[0]
    seal = Keyring.from_env("ASC_SEAL_KEY")
    assert (
        seal.open(cred.sealed_secret, credential_context(cred.id)) == b"sk-upstream-secret-123456"
    )


def test_revoked_key_leaves_the_next_snapshot() -> None:
    rows = factories.stack()
    before = load_snapshot(publish_snapshot().snapshot)
    assert len(before.policy.keys) == 1
    revoke_keys([rows["key"]], actor=None)  # type: ignore[list-item]
    after = load_snapshot(publish_snapshot().snapshot)
    assert len(after.policy.keys) == 0


def test_publish_reads_a_fixed_number_of_queries() -> None:
    for slug in ("a", "b", "c"):
        factories.stack(slug)
    with CaptureQueriesContext(connection) as few:
        publish_snapshot("3 tenants")
    for slug in ("d", "e", "f", "g", "h"):
        factories.stack(slug)
    with CaptureQueriesContext(connection) as more:
        publish_snapshot("8 tenants")
    assert len(more.captured_queries) == len(few.captured_queries)


def event(request_id: str, **fields: object) -> control_pb2.UsageEvent:
    return control_pb2.UsageEvent(request_id=request_id, ts_unix_ms=1_700_000_000_000, **fields)  # type: ignore[arg-type]


def test_usage_batches_are_stored_exactly_once() -> None:
    rows = factories.stack()
    batch = control_pb2.UsageBatch(
        batch_id="node-1:boot:1",
        node_id="node-1",
        events=[
            event(
                "req-1",
                tenant_id=str(rows["tenant"].id),  # type: ignore[attr-defined]
                key_id=str(rows["key"].id),  # type: ignore[attr-defined]
                prompt_tokens=12,
                completion_tokens=30,
                cost_nano_usd=315_000,
                fallbacks=[control_pb2.Attempt(model_id="m", provider_id="p", outcome="http_500")],
            ),
            event("req-2", status_code=403, error_code="model_not_allowed"),
        ],
    )
    first = ingest_batch(batch)
    assert (first.accepted, first.duplicate) == (2, False)
    replay = ingest_batch(batch)
    assert replay.duplicate
    assert UsageRecord.objects.count() == 2
    assert UsageBatchReceipt.objects.count() == 1
    stored = UsageRecord.objects.get(request_id="req-1")
    assert stored.tenant_id == rows["tenant"].id  # type: ignore[attr-defined]
    assert (stored.prompt_tokens, stored.completion_tokens, stored.cost_nano_usd) == (
        12,
        30,
        315_000,
    )
    assert stored.fallbacks == [{"model_id": "m", "provider_id": "p", "outcome": "http_500"}]


def test_an_event_replayed_in_another_batch_is_not_counted_twice() -> None:
    ingest_batch(control_pb2.UsageBatch(batch_id="b1", node_id="n", events=[event("same")]))
    ingest_batch(control_pb2.UsageBatch(batch_id="b2", node_id="n", events=[event("same")]))
    assert UsageRecord.objects.filter(request_id="same").count() == 1


def test_events_with_malformed_references_are_kept_without_them() -> None:
    ingest_batch(
        control_pb2.UsageBatch(
            batch_id="b", node_id="n", events=[event("r", tenant_id="not-a-uuid", route_name="x")]
        )
    )
    stored = UsageRecord.objects.get(request_id="r")
    assert stored.tenant_id is None
    assert stored.route_name == "x"


def test_a_batch_without_id_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_id"):
        ingest_batch(control_pb2.UsageBatch(node_id="n", events=[event("r")]))
    assert not PolicySnapshot.objects.exists()
    assert not UsageRecord.objects.exists()


def test_spend_rolls_up_per_day_tenant_key_and_route_exactly_once() -> None:
    rows = factories.stack()
    tenant, key, route = (str(rows[n].id) for n in ("tenant", "key", "route"))  # type: ignore[attr-defined]
    day_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z

    def batch(batch_id: str, *events: control_pb2.UsageEvent) -> None:
        ingest_batch(control_pb2.UsageBatch(batch_id=batch_id, node_id="n", events=events))

    def ev(rid: str, ts: int, cost: int, **extra: object) -> control_pb2.UsageEvent:
        return control_pb2.UsageEvent(
            request_id=rid, ts_unix_ms=ts, tenant_id=tenant, cost_nano_usd=cost,
            prompt_tokens=10, completion_tokens=5, **extra,  # type: ignore[arg-type]
        )  # fmt: skip

    batch(
        "b1",
        ev("a", day_ms + 1, 100, key_id=key, route_id=route),
        ev("b", day_ms + 2, 50, key_id=key, route_id=route),
    )
    batch("b2", ev("c", day_ms + 86_400_000, 7, key_id=key, route_id=route), ev("d", day_ms + 3, 0))
    assert rollup_spend() == 4
    batch("b3", ev("e", day_ms + 4, 1000, key_id=key, route_id=route))
    assert rollup_spend() == 1
    assert rollup_spend() == 0, "nothing is counted twice"
    rollups = {
        (str(r.day), str(r.key_id) == key, r.requests, r.cost_nano_usd, r.prompt_tokens)
        for r in SpendDaily.objects.all()
    }
    assert rollups == {
        ("2026-01-01", True, 3, 1150, 30),
        ("2026-01-02", True, 1, 7, 10),
        ("2026-01-01", False, 1, 0, 10),  # a refusal: no key or route
    }
    assert sum(r.cost_nano_usd for r in SpendDaily.objects.all()) == sum(
        UsageRecord.objects.values_list("cost_nano_usd", flat=True)
    )
