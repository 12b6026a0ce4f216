"""Usage and audit ingestion by COPY (control_plane.usage.copy_ingest): the batched hash
check agrees with the per-record one, awkward text survives the COPY, no column is left out,
and batches ingested side by side stay exactly-once with their chains intact."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection, connections

from control_plane.audit.models import AuditChain, AuditRecord
from control_plane.usage import copy_ingest
from control_plane.usage.models import UsageBatchReceipt, UsageRecord
from control_plane.usage.services import Ingested, ingest_batch
from shared.audit import content_intact, hashes_hold, record_hash, seal
from shared.pb import control_pb2, snapshot_pb2

AWKWARD = "tab\there, line\nbreak, back\\slash \\N, cr\r, nul\x00 and é"


def records(chain: str, n: int, start: int = 1, prev: str = "") -> list[control_pb2.AuditRecord]:
    out = []
    for seq in range(start, start + n):
        event = control_pb2.UsageEvent(
            request_id=f"{chain}-req-{seq}",
            ts_unix_ms=1_767_225_600_123 + seq,
            subject=AWKWARD if seq % 2 else "alice",
            route_name="chat",
            cost_nano_usd=seq,
            fallbacks=[control_pb2.Attempt(model_id="m\t1", provider_id='p"', outcome="x\\y")],
        )
        record = control_pb2.AuditRecord(
            chain_id=chain, event=event, decision="allowed", categories=["email", "a\tb"]
        )
        prev = seal(record, prev, seq).hash
        out.append(record)
    return out


def batch(batch_id: str, audit: list[control_pb2.AuditRecord]) -> control_pb2.UsageBatch:
    return control_pb2.UsageBatch(
        batch_id=batch_id, node_id="n", events=[r.event for r in audit], audit=audit
    )


def test_the_batched_hash_check_agrees_with_the_per_record_one() -> None:
    chain = records("c", 6)
    chain[1].event.cost_nano_usd += 1  # a field changed: its hash no longer recomputes
    chain[2].event.subject = "mallory"  # content changed: its digest no longer matches
    chain[3].hash = "0" * 64
    old = control_pb2.AuditRecord(chain_id="old", decision="allowed")  # sealed before digests
    old.event.request_id = "r"
    old.hash = record_hash(old)
    forged = control_pb2.AuditRecord()
    forged.CopyFrom(old)
    forged.event.request_id = "other"
    every = [*chain, old, forged]
    expected = [r.hash == record_hash(r) and content_intact(r) for r in every]
    assert expected == [True, False, False, False, True, True, True, False]
    assert hashes_hold(every) == expected


def test_every_column_but_the_id_and_ingest_xid_is_copied() -> None:
    for model, columns in (
        (UsageRecord, copy_ingest.USAGE_INSERT),
        (AuditRecord, copy_ingest.AUDIT_INSERT),
    ):
        wanted = {
            str(f.column)
            for f in model._meta.concrete_fields
            if not f.primary_key and not f.has_db_default()
        }
        assert {c.strip() for c in columns.split(",")} == wanted, model.__name__


def test_copy_text_escapes_what_copy_would_read_otherwise() -> None:
    assert copy_ingest.text("plain é") == "plain é"
    assert copy_ingest.text("a\tb\nc\\d\re\x00") == "a\\tb\\nc\\\\d\\re"


@pytest.mark.django_db
def test_awkward_text_is_stored_as_sent() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    chain = records("awk", 2)
    ingest_batch(batch("awk:1", chain))
    stored = AuditRecord.objects.get(seq=1)
    assert stored.subject == AWKWARD.replace("\x00", "")
    assert stored.categories == ["email", "a\tb"]
    assert stored.fallbacks == [{"model_id": "m\t1", "provider_id": 'p"', "outcome": "x\\y"}]
    assert bytes(stored.payload) == chain[0].SerializeToString(deterministic=True)
    assert round(stored.ts.timestamp() * 1000) == chain[0].event.ts_unix_ms
    assert stored.chain_ok
    usage = UsageRecord.objects.get(request_id="awk-req-1")
    assert usage.subject == AWKWARD.replace("\x00", "")
    assert (usage.node_id, usage.rolled_up, usage.cost_nano_usd) == ("n", False, 1)


@pytest.mark.django_db
def test_tags_and_cache_hits_are_stored_on_either_ingest_path() -> None:
    """The ORM path (SQLite here) and the COPY path (PostgreSQL) store the same columns."""
    tagged = control_pb2.UsageEvent(
        request_id="tagged",
        ts_unix_ms=1_767_225_600_000,
        tags=[
            snapshot_pb2.Tag(key="feature", value="summarizer"),
            snapshot_pb2.Tag(key="team", value="a\tb"),
        ],
        cache_hit=True,
        cost_saved_nano_usd=12_345,
    )
    plain = control_pb2.UsageEvent(request_id="plain", ts_unix_ms=1_767_225_600_000)
    ingest_batch(control_pb2.UsageBatch(batch_id="tags:1", node_id="n", events=[tagged, plain]))
    stored = UsageRecord.objects.get(request_id="tagged")
    assert stored.tags == {"feature": "summarizer", "team": "a\tb"}
    assert (stored.cache_hit, stored.cost_saved_nano_usd) == (True, 12_345)
    other = UsageRecord.objects.get(request_id="plain")
    assert (other.tags, other.cache_hit, other.cost_saved_nano_usd) == ({}, False, 0)
    assert UsageRecord.objects.filter(tags__feature="summarizer").count() == 1


@pytest.mark.django_db
def test_an_audit_record_keeps_its_own_event_when_the_usage_event_differs() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the COPY path is PostgreSQL's")
    (record,) = records("own", 1)
    usage = control_pb2.UsageEvent()
    usage.CopyFrom(record.event)
    usage.subject, usage.cost_nano_usd = "someone else", 99
    ingest_batch(
        control_pb2.UsageBatch(batch_id="own:1", node_id="n", events=[usage], audit=[record])
    )
    stored = AuditRecord.objects.get(chain_id="own")
    assert (stored.subject, stored.cost_nano_usd) == (record.event.subject.replace("\x00", ""), 1)
    assert stored.chain_ok
    assert UsageRecord.objects.get().subject == "someone else"


@pytest.mark.django_db
def test_events_and_records_stored_before_are_skipped_and_the_rest_stored() -> None:
    """A batch repeating an event and an audit record of an earlier batch (another batch
    id): the straight COPY meets them, and the batch is stored without them instead."""
    chain = records("dup", 4)
    ingest_batch(batch("dup:1", chain[:2]))
    again = ingest_batch(batch("dup:2", chain[1:]))  # record 2 and its event a second time
    assert (again.accepted, again.duplicate) == (3, False)
    assert sorted(UsageRecord.objects.values_list("request_id", flat=True)) == [
        f"dup-req-{seq}" for seq in (1, 2, 3, 4)
    ]
    assert sorted(AuditRecord.objects.values_list("seq", flat=True)) == [1, 2, 3, 4]
    assert not AuditRecord.objects.filter(chain_ok=False).exists()
    head = AuditChain.objects.get(chain_id="dup")
    assert (head.last_seq, head.last_hash) == (4, chain[3].hash)
    assert head.breaks == 1  # record 2 again did not extend the chain
    assert UsageBatchReceipt.objects.count() == 2


def _side_by_side(calls: list[Callable[[], Ingested]]) -> list[Ingested]:
    """Run the calls at once, each in a thread (and connection) of its own."""
    results: list[Ingested | None] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        try:
            start.wait()
            results[i] = calls[i]()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


@pytest.mark.django_db(transaction=True)
def test_batches_in_flight_together_are_stored_exactly_once() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("several batches are in flight on PostgreSQL only (SQLite: one writer)")
    one, two = records("one", 40), records("two", 40)
    calls = [
        *(lambda: ingest_batch(batch("one:1", one[:20])) for _ in range(3)),  # a replay, twice
        lambda: ingest_batch(batch("two:1", two[:20])),
        lambda: ingest_batch(batch("two:2", two[20:])),  # the same chain's next batch
    ]
    # (a node sends its batches one at a time; had two:2 come first, the chain would flag
    # the records as out of order, and its head would still end on record 40)
    results = _side_by_side(calls)
    assert sorted(r.duplicate for r in results[:3]) == [False, True, True]
    assert UsageBatchReceipt.objects.count() == 3
    assert UsageRecord.objects.count() == 60
    assert AuditRecord.objects.filter(chain_id="one").count() == 20
    assert AuditRecord.objects.filter(chain_id="two").count() == 40
    heads = {c.chain_id: (c.last_seq, c.last_hash) for c in AuditChain.objects.all()}
    assert heads == {"one": (20, one[19].hash), "two": (40, two[39].hash)}
    # The next batch of chain one extends it as if its first batch had come alone.
    ingest_batch(batch("one:2", one[20:]))
    assert not AuditRecord.objects.filter(chain_id="one", chain_ok=False).exists()
    assert AuditChain.objects.get(chain_id="one").breaks == 0
