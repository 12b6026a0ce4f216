"""Exports of a period (usage, audit): exactly the database's records of the period, row for
row, in a stable order, closed by a trailer with their count; the same from the API, the
admin's buttons and ``manage.py asc_export_records``."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from control_plane.audit.export import FIELDS
from control_plane.audit.models import AuditRecord
from control_plane.audit.services import make_checkpoints
from control_plane.tenancy.models import Tenant
from control_plane.usage.export import COLUMNS, plain
from control_plane.usage.models import UsageRecord
from tests.control_plane.test_cursor import T0, Node, postgres_only

SINCE, UNTIL = T0 + timedelta(days=1), T0 + timedelta(days=2)
PERIOD = "since=2026-03-02T00:00:00Z&until=2026-03-03T00:00:00Z"


def three_days() -> tuple[Node, Node]:
    """Records of two tenants on the day before, the day of and the day after the period,
    the period's own records sharing timestamps (the order's tie-break is the id)."""
    a, b = Node("dp-a"), Node("dp-b")
    for node in (a, b):
        Tenant.objects.create(id=node.tenant, slug=node.name, name=node.name)
    for day in range(3):
        a.batch(40, ts=T0 + timedelta(days=day))
        b.batch(40, ts=T0 + timedelta(days=day))
    return a, b


def body(response: Any) -> bytes:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)


def split(data: bytes, fmt: str) -> tuple[bytes, dict[str, Any]]:
    """Records (every byte before the trailer line) and the trailer."""
    records, _, last = data.rstrip(b"\n").rpartition(b"\n")
    records += b"\n" if records else b""
    if fmt == "csv":
        return records, json.loads(last.removeprefix(b"# trailer "))
    return records, json.loads(last)["trailer"]


def in_database(**where: Any) -> list[dict[str, Any]]:
    rows = UsageRecord.objects.filter(**where).order_by("ts", "id").values_list(*COLUMNS)
    return [plain(dict(zip(COLUMNS, r, strict=True))) for r in rows]


@pytest.mark.django_db(transaction=True)  # exports read in their own transaction
def test_an_export_is_the_period_row_for_row(api: APIClient) -> None:
    three_days()
    expected = in_database(ts__gte=SINCE, ts__lt=UNTIL)
    assert len(expected) == 80
    assert len(in_database()) == 240
    data = body(api.get(f"/api/v1/usage/export/?{PERIOD}"))
    records, trailer = split(data, "ndjson")
    assert [json.loads(line) for line in records.splitlines()] == json.loads(json.dumps(expected))
    sums = UsageRecord.objects.filter(ts__gte=SINCE, ts__lt=UNTIL).aggregate(
        prompt_tokens=Sum("prompt_tokens"),
        completion_tokens=Sum("completion_tokens"),
        cost_nano_usd=Sum("cost_nano_usd"),
    )
    assert trailer == {
        "kind": "usage",
        "count": 80,
        "sha256": hashlib.sha256(records).hexdigest(),
        "order": ["ts", "id"],
        "filters": {"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"},
        "totals": sums,
    }
    csv_data = body(api.get(f"/api/v1/usage/export/?{PERIOD}", HTTP_ACCEPT="text/csv"))
    csv_records, csv_trailer = split(csv_data, "csv")
    rows = list(csv.DictReader(io.StringIO(csv_records.decode())))
    assert [r["request_id"] for r in rows] == [r["request_id"] for r in expected]
    assert rows[0] == {k: _csv_cell(v) for k, v in expected[0].items()}
    assert csv_trailer["count"] == 80
    assert csv_trailer["sha256"] == hashlib.sha256(csv_records).hexdigest()
    assert body(api.get(f"/api/v1/usage/export/?{PERIOD}&format=csv")) == csv_data
    again = body(api.get(f"/api/v1/usage/export/?{PERIOD}"))
    assert again == data, "the same period, the same bytes"


def _csv_cell(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_an_export_is_one_snapshot_while_records_arrive(api: APIClient) -> None:
    """Records ingested into the period while an export streams are not in it: every line
    and the trailer come from the snapshot the export began with."""
    node = Node("dp-a")
    for _ in range(5):
        node.batch(1000, ts=SINCE)
    stream = api.get(f"/api/v1/usage/export/?{PERIOD}").streaming_content  # type: ignore[attr-defined]
    first = next(stream)
    arrived = threading.Thread(target=_ingest_elsewhere, args=(Node("dp-b"),))
    arrived.start()
    arrived.join(timeout=60)
    records, trailer = split(first + b"".join(stream), "ndjson")
    assert trailer["count"] == len(records.splitlines()) == 5000
    assert all(json.loads(line)["node_id"] == "dp-a" for line in records.splitlines())
    assert UsageRecord.objects.count() == 5500


def _ingest_elsewhere(node: Node) -> None:
    try:
        node.batch(500, ts=SINCE)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_an_audit_export_names_its_chains_and_checkpoints(api: APIClient) -> None:
    a, _ = three_days()
    make_checkpoints()
    data = body(api.get(f"/api/v1/audit/export/?{PERIOD}&tenant={a.tenant}"))
    records, trailer = split(data, "ndjson")
    lines = [json.loads(line) for line in records.splitlines()]
    stored = AuditRecord.objects.filter(tenant_id=a.tenant, ts__gte=SINCE, ts__lt=UNTIL)
    assert [(r["chain_id"], r["seq"]) for r in lines] == list(
        stored.order_by("ts", "chain_id", "seq").values_list("chain_id", "seq")
    )
    assert set(lines[0]) == set(FIELDS)
    [chain] = trailer["chains"]
    assert (chain["chain_id"], chain["records"]) == ("dp-a:boot", 40)
    assert (chain["first_seq"], chain["last_seq"]) == (41, 80)  # the second day of the chain
    assert chain["head"]["seq"] == 120
    assert chain["checkpoint"]["seq"] == 120  # the earliest checkpoint covering seq 80
    assert chain["last_hash"] == stored.get(seq=80).hash


@pytest.mark.django_db(transaction=True)
def test_the_command_writes_what_the_api_serves(api: APIClient, tmp_path: Path) -> None:
    a, _ = three_days()
    for kind, fmt in (("usage", "csv"), ("audit", "ndjson")):
        out = tmp_path / f"{kind}.{fmt}"
        call_command(
            "asc_export_records",
            kind,
            since="2026-03-02T00:00:00Z",
            until="2026-03-03T00:00:00Z",
            format=fmt,
            output=str(out),
        )
        served = body(api.get(f"/api/v1/{kind}/export/?{PERIOD}&format={fmt}"))
        assert out.read_bytes() == served, kind
    out = tmp_path / "a.ndjson"
    call_command("asc_export_records", "usage", tenant=a.name, output=str(out))
    records, trailer = split(out.read_bytes(), "ndjson")
    assert trailer["count"] == 120 == len(records.splitlines())
    assert {json.loads(line)["tenant_id"] for line in records.splitlines()} == {a.tenant}


@pytest.mark.django_db
def test_the_admin_lists_export_what_they_select(admin_user: User) -> None:
    three_days()
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/asc_usage/usagerecord/?node_id=dp-a&p=2").content.decode()
    assert 'href="/admin/asc_usage/usagerecord/export/csv/?node_id=dp-a"' in page
    UsageRecord.objects.filter(request_id="dp-a-2-0").update(status_code=500)
    response = client.get("/admin/asc_usage/usagerecord/export/ndjson/?status_code__exact=500")
    records, trailer = split(body(response), "ndjson")
    assert trailer["count"] == 1
    assert json.loads(records)["request_id"] == "dp-a-2-0"
    response = client.get("/admin/asc_audit/auditrecord/export/csv/?ts__year=2026&ts__month=3")
    _, trailer = split(body(response), "csv")
    assert trailer["count"] == 240
    assert client.get("/admin/asc_usage/usagerecord/export/csv/?nope=1").status_code == 400


@pytest.mark.django_db
def test_export_errors_keep_the_json_error_shape(api: APIClient) -> None:
    for query in ("since=yesterday", "since=yesterday&format=csv", "as=xml"):
        response = api.get(f"/api/v1/usage/export/?{query}", HTTP_ACCEPT="text/csv")
        assert response.status_code == 400, query
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"error"}
    response = api.get("/api/v1/usage/export/", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert set(response.json()) == {"error"}


def test_the_schema_says_which_lists_take_a_cursor() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]

    def params(path: str, operation: str = "get") -> set[str]:
        return {p["name"] for p in paths[path][operation].get("parameters", [])}

    for name in ("usage", "audit", "snapshots", "nodes"):
        assert {"cursor", "limit"} <= params(f"/api/v1/{name}/"), name
        assert "offset" not in params(f"/api/v1/{name}/"), name
    assert {"limit", "offset"} <= params("/api/v1/tenants/")
    for name in ("usage", "audit"):
        export = paths[f"/api/v1/{name}/export/"]["get"]
        assert {"since", "until", "tenant", "format"} <= params(f"/api/v1/{name}/export/")
        assert {"application/x-ndjson", "text/csv"} <= set(export["responses"]["200"]["content"])
