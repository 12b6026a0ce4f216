"""Cursor pagination of the lists that grow while they are read (usage, audit, snapshots,
nodes): every record that existed when a read began comes back exactly once, however many
are ingested meanwhile; filters combine with the cursor; offsets are refused."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from rest_framework.test import APIClient

from control_plane.audit.models import AuditRecord
from control_plane.core.ingestion import safe_horizon
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.tenancy.models import Tenant
from control_plane.usage.models import UsageRecord
from control_plane.usage.services import ingest_batch
from shared.audit import GENESIS, seal
from shared.pb import control_pb2

ON_POSTGRES = str(settings.DATABASES["default"]["ENGINE"]).endswith("postgresql")
postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="concurrent ingestion: PostgreSQL")
T0 = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class Node:
    """A data plane's batches: usage events, each with its audit record, chained."""

    name: str
    tenant: str = field(default_factory=lambda: str(uuid.uuid4()))
    batches: int = 0
    seq: int = 0
    head: str = GENESIS

    def batch(self, size: int, ts: datetime = T0, tenant: str | None = None) -> list[str]:
        """Ingest one batch of ``size``; returns its request ids."""
        self.batches += 1
        batch = control_pb2.UsageBatch(batch_id=f"{self.name}:{self.batches}", node_id=self.name)
        for i in range(size):
            event = control_pb2.UsageEvent(
                request_id=f"{self.name}-{self.batches}-{i}",
                ts_unix_ms=int((ts + timedelta(seconds=i)).timestamp() * 1000),
                tenant_id=tenant or self.tenant,
                cost_nano_usd=1000 + i,
                prompt_tokens=10,
                status_code=200,
            )
            self.seq += 1
            record = control_pb2.AuditRecord(
                chain_id=f"{self.name}:boot", event=event, decision="allowed"
            )
            self.head = seal(record, self.head, self.seq).hash
            batch.events.append(event)
            batch.audit.append(record)
        ingest_batch(batch)
        return [e.request_id for e in batch.events]


def read_all(
    client: APIClient, url: str, between_pages: Callable[[], None] = lambda: None
) -> tuple[list[str], list[int]]:
    """Every page of a list by its ``next`` links: request ids in order, and each page's count."""
    ids: list[str] = []
    counts: list[int] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        page = response.json()
        ids += [row["request_id"] for row in page["results"]]
        counts.append(page["count"])
        url = page["next"]
        between_pages()
    return ids, counts


class Ingester(threading.Thread):
    """Ingests batches back to back, as fast as ingestion allows, until stopped; the reader
    can wait for the next batch to be committed so inserts surely fall between its pages."""

    def __init__(self, node: Node, size: int = 200) -> None:
        super().__init__(daemon=True)
        self.node, self.size = node, size
        self.committed = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.progress = threading.Condition()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.node.batch(self.size, ts=T0 + timedelta(days=1))
                with self.progress:
                    self.committed += 1
                    self.progress.notify_all()
        except BaseException as exc:  # reported by the test that started it
            self.error = exc
        finally:
            connection.close()  # this thread's own connection

    def wait_for_more(self) -> None:
        with self.progress:
            seen = self.committed
            assert self.progress.wait_for(
                lambda: self.committed > seen or self.error is not None, timeout=60
            ), "no batch was ingested"


def settled() -> None:
    """Wait until every record stored so far is below the safe horizon. The horizon is the
    oldest write transaction running anywhere on the database server, so a transaction of
    another database (another test run) can hold it back for a while; a read begun before
    then would rightly not hold the records yet. Waited for by condition, not by the clock."""
    newest = UsageRecord.objects.aggregate(newest=Max("ingest_xid"))["newest"] or 0
    ready = threading.Event()
    for _ in range(600):
        if (safe_horizon() or 0) > newest:
            return
        ready.wait(0.1)
    raise AssertionError("the safe horizon did not pass the stored records in a minute")


@contextmanager
def ingesting(node: Node) -> Iterator[Ingester]:
    ingester = Ingester(node)
    ingester.start()
    try:
        yield ingester
    finally:
        ingester.stop.set()
        ingester.join(timeout=60)
    assert ingester.error is None, ingester.error


@postgres_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("endpoint", ["usage", "audit"])
def test_every_record_once_while_ingestion_runs(api: APIClient, endpoint: str) -> None:
    reader = Node("dp-a")
    existing = [rid for _ in range(10) for rid in reader.batch(200)]
    settled()
    writer = Node("dp-b")
    with ingesting(writer) as ingester:
        ids, counts = read_all(api, f"/api/v1/{endpoint}/?limit=97", ingester.wait_for_more)
        while_reading = ingester.committed
    assert while_reading >= len(counts), "a batch was committed after every page"
    during = ingester.committed  # and perhaps one more before it stopped
    assert len(ids) == len(set(ids)), "no record twice"
    assert set(existing) <= set(ids), f"missing: {sorted(set(existing) - set(ids))[:5]}"
    # The read is one fixed set (what was safely stored when it began: every pre-existing
    # record, and what the writer had committed by the first page), and its count says so.
    assert set(counts) == {len(ids)}
    assert len(ids) < len(existing) + during * 200
    model: Any = UsageRecord if endpoint == "usage" else AuditRecord
    assert model.objects.count() == len(existing) + during * 200
    # Offsets, under the same traffic, repeat rows (what the cursor is for).
    client_side = read_by_offset(model, ingester_for=writer)
    assert len(client_side) != len(set(client_side))


def read_by_offset(model: Any, ingester_for: Node) -> list[str]:
    """Pages by offset over the same order, a batch ingested between pages."""
    ids: list[str] = []
    rows = model.objects.order_by("-ingest_xid", "-id").values_list("request_id", flat=True)
    total = rows.count()
    offset = 0
    while offset < total:
        ids += list(rows[offset : offset + 500])
        offset += 500
        ingester_for.batch(200, ts=T0 + timedelta(days=1))
    return ids


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_read_excludes_what_was_in_flight_when_it_began(api: APIClient) -> None:
    """Rows of a transaction still open when a read begins are not in it, even once they
    commit, nor are rows committed after it (they sort above the read's horizon): every page
    comes from the set fixed on the first, and a new read sees them all."""
    node, late, later = Node("dp-a"), Node("dp-late"), Node("dp-later")
    existing = [rid for _ in range(3) for rid in node.batch(100)]
    settled()
    started, release = threading.Event(), threading.Event()
    in_flight: list[str] = []

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                in_flight.extend(late.batch(50))  # ids taken now, committed after the read
                started.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    assert started.wait(timeout=60)
    committed_meanwhile = later.batch(50)  # higher ids than the open batch, committed first
    first = api.get("/api/v1/usage/?limit=100").json()
    release.set()
    thread.join(timeout=60)
    ids = [r["request_id"] for r in first["results"]]
    rest, _ = read_all(api, first["next"])
    ids += rest
    assert sorted(ids) == sorted(existing)
    assert first["count"] == len(existing)
    settled()
    everything, _ = read_all(api, "/api/v1/usage/?limit=1000")
    assert set(everything) == set(existing) | set(in_flight) | set(committed_meanwhile)


@pytest.mark.django_db
def test_filters_combine_with_the_cursor(api: APIClient) -> None:
    a, b = Node("dp-a"), Node("dp-b")
    for node in (a, b):
        Tenant.objects.create(id=node.tenant, slug=node.name, name=node.name)
    day1 = a.batch(30, ts=T0) + b.batch(30, ts=T0)
    day2 = a.batch(30, ts=T0 + timedelta(days=1))
    since, until = T0.isoformat().replace("+00:00", "Z"), (T0 + timedelta(days=1)).isoformat()
    query = f"tenant={a.tenant}&since={since}&until={until.replace('+00:00', 'Z')}"
    ids, counts = read_all(api, f"/api/v1/usage/?{query}&limit=7")
    assert sorted(ids) == sorted(day1[:30])
    assert counts == [30] * 5
    ids, _ = read_all(api, f"/api/v1/audit/?tenant={a.tenant}&limit=11")
    assert sorted(ids) == sorted(day1[:30] + day2)
    # Newest ingested first: the second batch of a's before its first.
    ids, _ = read_all(api, f"/api/v1/usage/?tenant={a.tenant}&limit=25")
    assert ids[:30] == sorted(day2, key=lambda r: -int(r.rsplit("-", 1)[1]))


@pytest.mark.django_db
def test_cursor_misuse_is_a_clear_400(api: APIClient) -> None:
    node = Node("dp-a")
    node.batch(5)
    for endpoint in ("usage", "audit", "snapshots", "nodes"):
        response = api.get(f"/api/v1/{endpoint}/?limit=2&offset=2")
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]["details"]["offset"][0]
    first = api.get("/api/v1/usage/?limit=2").json()
    assert api.get(first["next"]).status_code == 200
    assert api.get(first["next"] + f"&tenant={node.tenant}").status_code == 400  # other filters
    assert api.get(first["next"].replace("/usage/", "/audit/")).status_code == 400
    for junk in ("x", "eyJ9", "e30", "W10"):
        response = api.get(f"/api/v1/usage/?cursor={junk}")
        assert response.status_code == 400, junk
        assert "cursor" in response.json()["error"]["details"]
    assert len(api.get("/api/v1/usage/?limit=5000").json()["results"]) == 5  # capped, not refused
    # Other lists keep limit/offset.
    assert api.get("/api/v1/tenants/?limit=1&offset=1").status_code == 200


@pytest.mark.django_db
def test_snapshots_and_nodes_page_by_their_keys(api: APIClient) -> None:
    for version in range(1, 8):
        PolicySnapshot.objects.create(version=version, hash=f"{version:064d}", payload=b"")
    for name in ("dp-c", "dp-a", "dp-e", "dp-b", "dp-d"):
        DataPlaneNode.objects.create(node_id=name)
    page = api.get("/api/v1/snapshots/?limit=3").json()
    versions = [s["version"] for s in page["results"]]
    PolicySnapshot.objects.create(version=8, hash="8" * 64, payload=b"")  # above the read
    while page["next"]:
        page = api.get(page["next"]).json()
        versions += [s["version"] for s in page["results"]]
    assert versions == [7, 6, 5, 4, 3, 2, 1]
    page = api.get("/api/v1/nodes/?limit=2").json()
    nodes = [n["node_id"] for n in page["results"]]
    DataPlaneNode.objects.create(node_id="dp-0")  # before the read's position: not in it
    while page["next"]:
        page = api.get(page["next"]).json()
        nodes += [n["node_id"] for n in page["results"]]
    assert nodes == ["dp-a", "dp-b", "dp-c", "dp-d", "dp-e"]


@pytest.mark.django_db
def test_a_time_filter_compares_in_utc_whatever_offset_it_names(api: APIClient) -> None:
    """Python takes offsets up to 23:59 that PostgreSQL refuses (past 15:59): the filter
    converts to UTC first, so such a time filters like its UTC equivalent instead of a 500."""
    node = Node("dp-a")
    Tenant.objects.create(id=node.tenant, slug=node.name, name=node.name)
    before, after = node.batch(3, ts=T0), node.batch(2, ts=T0 + timedelta(hours=2))
    # T0 + 1 h, written with a +22:30 offset.
    since = (T0 + timedelta(hours=1)).astimezone(timezone(timedelta(hours=22, minutes=30)))
    for endpoint in ("usage", "audit"):
        ids, _ = read_all(api, f"/api/v1/{endpoint}/?since={quote(since.isoformat())}")
        assert sorted(ids) == sorted(after), endpoint
        ids, _ = read_all(api, f"/api/v1/{endpoint}/?until={quote(since.isoformat())}")
        assert sorted(ids) == sorted(before), endpoint
    # Year 1 at a positive offset is before the calendar starts in UTC: a clear 400.
    response = api.get(f"/api/v1/usage/?since={quote('0001-01-01T00:00:00+05:00')}")
    assert response.status_code == 400
    assert "since" in response.json()["error"]["details"]
    response = api.get(f"/api/v1/spend/?group_by=tenant&since={quote('0001-01-01T00:00:00+05:00')}")
    assert response.status_code == 400
