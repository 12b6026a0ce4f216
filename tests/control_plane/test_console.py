"""The console: the admin's front page (fleet, today's spend and requests by tenant, top
denials, the rollout in flight) per role, and the tenant timeline's lanes and event marks
(snapshot versions published, budget thresholds crossed, circuits found open), and where the
last two are recorded from what reaches the control plane."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from control_plane.console.timeline import time_range
from control_plane.fleet import services as fleet
from control_plane.fleet.models import CircuitOpening, DataPlaneNode
from control_plane.fleet.services import publish_snapshot
from control_plane.keys.models import VirtualKey
from control_plane.limits.models import LeaseWindow, Limit
from control_plane.limits.selectors import alerted_thresholds
from control_plane.limits.services import acquire
from control_plane.rollouts import services as rollouts
from control_plane.tenancy.models import Membership, Tenant
from control_plane.usage.charts import Lane, Mark, timeline_chart
from control_plane.usage.services import ingest_batch
from shared import windows
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def users() -> dict[str, User]:
    tenant_a = factories.stack("tenant-a")["tenant"]
    assert isinstance(tenant_a, Tenant)
    factories.stack("tenant-b")
    out = {"platform": User.objects.create_superuser("platform", "p@x.io", "pw-1234567")}
    for role in ("tenant_admin", "developer", "auditor"):
        out[role] = User.objects.create_user(role, password="pw-1234567", is_staff=True)
        Membership.objects.create(user=out[role], tenant=tenant_a, role=role)
    return out


def login(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


def event(
    tenant: str,
    i: int,
    *,
    cost: int = 0,
    status: int = 200,
    code: str = "",
    key: str = "",
    **kw: Any,
) -> control_pb2.UsageEvent:
    t = Tenant.objects.get(slug=tenant)
    return control_pb2.UsageEvent(
        request_id=f"{tenant}-{i}-{status}-{code}",
        ts_unix_ms=kw.pop("ts_ms", int(time.time() * 1000)),
        tenant_id=str(t.id),
        key_id=key,
        cost_nano_usd=cost,
        status_code=status,
        error_code=code,
        ttft_ms=50,
        **kw,
    )


def report(node: str, events: list[control_pb2.UsageEvent], batch: str) -> None:
    """What the gRPC servicer does with a usage batch (grpc_api.servicers.ReportUsage)."""
    ingest_batch(control_pb2.UsageBatch(batch_id=batch, node_id=node, events=events))
    if sightings := fleet.circuit_sightings(events):
        fleet.circuits_seen(node, sightings)


def circuit_attempt(tenant: str) -> control_pb2.Attempt:
    model = VirtualKey.objects.get(tenant__slug=tenant).routes.get().targets.get().model
    return control_pb2.Attempt(
        model_id=str(model.pk), provider_id=str(model.provider_id), outcome="circuit_open"
    )


@pytest.fixture
def traffic(users: dict[str, User]) -> None:
    """Today's traffic: tenant-a spends more than tenant-b; denials by two reasons; one of
    tenant-a's requests found a circuit open on dp-1."""
    dev_key = VirtualKey.objects.get(tenant__slug="tenant-a")
    dev_key.created_by = users["developer"]
    dev_key.save()
    a_events = [event("tenant-a", i, cost=3_000_000_000, key=str(dev_key.pk)) for i in range(3)]
    a_events += [event("tenant-a", 9, status=429, code="budget_exceeded")]
    a_events += [event("tenant-a", 10, fallbacks=[circuit_attempt("tenant-a")])]
    a_events += [event("tenant-a", i, status=403, code="model_not_allowed") for i in range(2)]
    b_events = [event("tenant-b", i, cost=1_000_000_000) for i in range(5)]
    b_events += [event("tenant-b", i, status=429, code="rate_limited") for i in range(4)]
    report("dp-1", a_events, "b-a")
    report("dp-2", b_events, "b-b")
    publish_snapshot("first")
    DataPlaneNode.objects.create(node_id="dp-1", region="eu", connected=True, applied_version=1)
    DataPlaneNode.objects.create(node_id="dp-2", region="us", connected=False, applied_version=0)


def test_the_front_page_shows_a_platform_admin_the_fleet_spend_denials_and_rollout(
    users: dict[str, User], traffic: None
) -> None:
    rollouts.start(actor=users["platform"], steps=[25, 100], soak_s=60)
    response = login(users["platform"]).get("/admin/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="asc-fleet"' in page
    nodes = response.context["fleet"]["nodes"]
    assert [(n.node.node_id, n.lag, n.open_circuits) for n in nodes] == [
        ("dp-1", 0, 1),
        ("dp-2", 1, 0),
    ], "connected first; dp-2 one version behind; dp-1's requests found a circuit open"
    DataPlaneNode.objects.create(node_id="dp-0", connected=True, applied_version=1)
    DataPlaneNode.objects.create(node_id="dp-00", connected=True, applied_version=0)
    nodes = login(users["platform"]).get("/admin/").context["fleet"]["nodes"]
    assert [n.node.node_id for n in nodes] == ["dp-00", "dp-1", "dp-0", "dp-2"], (
        "connected nodes needing a look (behind, circuits open) first"
    )
    [circuit] = response.context["fleet"]["circuits"]
    assert (circuit.provider, circuit.model, circuit.requests) == ("mock", "mock-1", 1)
    tenants = [(t.slug, t.requests, t.spend_usd) for t in response.context["tenants_today"]]
    assert tenants == [("tenant-a", 7, 9.0), ("tenant-b", 9, 5.0)], "most spent first"
    assert page.count('<svg class="asc-spark"') == 2, "requests by hour, per tenant"
    assert response.context["top_denials"][0][:2] == ("rate_limited", 4)
    assert [d[:2] for d in response.context["top_denials"][1:]] == [
        ("model_not_allowed", 2),
        ("budget_exceeded", 1),
    ]
    tenant_a = Tenant.objects.get(slug="tenant-a")
    assert f"/admin/asc_tenancy/tenant/{tenant_a.pk}/timeline/" in page, "links to the timeline"
    assert "/admin/asc_fleet/dataplanenode/" in page
    assert response.context["rollout"].share == 25
    assert "/admin/asc_rollouts/rollout/" in page
    assert "Configuration and records" in page
    assert "Providers" in page, "the models stay listed"


def test_the_front_page_shows_a_tenant_admin_only_their_tenant_and_no_fleet(
    users: dict[str, User], traffic: None
) -> None:
    response = login(users["tenant_admin"]).get("/admin/")
    page = response.content.decode()
    assert response.status_code == 200
    assert response.context["fleet"] is None
    assert 'id="asc-fleet"' not in page
    assert "dp-1" not in page
    assert [t.slug for t in response.context["tenants_today"]] == ["tenant-a"]
    assert "tenant-b" not in page
    assert "rate_limited" not in page, "tenant-b's denials are not shown"
    assert [d[:2] for d in response.context["top_denials"]] == [
        ("model_not_allowed", 2),
        ("budget_exceeded", 1),
    ]
    assert response.context["rollout"] is None, "rollouts are for platform admins and auditors"


def test_an_auditor_sees_the_rollout_in_flight_but_not_the_fleet(
    users: dict[str, User], traffic: None
) -> None:
    rollouts.start(actor=users["platform"], steps=[10, 100], soak_s=60)
    response = login(users["auditor"]).get("/admin/")
    assert response.context["fleet"] is None
    assert response.context["rollout"].share == 10
    assert "Step 1 of 2: 10% of the fleet" in response.content.decode()


def test_a_developer_sees_only_their_own_keys_usage(users: dict[str, User], traffic: None) -> None:
    response = login(users["developer"]).get("/admin/")
    assert [(t.slug, t.requests) for t in response.context["tenants_today"]] == [("tenant-a", 3)]
    assert response.context["top_denials"] == []


def test_the_front_page_of_an_empty_installation(users: dict[str, User]) -> None:
    page = login(users["platform"]).get("/admin/").content.decode()
    assert "No requests today." in page
    assert "No data plane has connected yet." in page
    assert "No staged change in flight" in page


def test_the_timeline_draws_five_lanes_on_one_axis_with_the_ranges_events(
    users: dict[str, User], traffic: None
) -> None:
    tenant = Tenant.objects.get(slug="tenant-a")
    limit = Limit.objects.create(
        tenant=tenant, scope="tenant", kind="budget", period="day", amount=Decimal("10"),
        alert_thresholds=[0.5, 1],
    )  # fmt: skip
    ask = control_pb2.LeaseAsk(limit_id=str(limit.pk), want=1)
    acquire("dp-1", [ask], time.time())
    window = LeaseWindow.objects.get(limit=limit).window
    acquire("dp-1", [control_pb2.LeaseAsk(limit_id=str(limit.pk), window=window,
                                          committed=6 * 10**9, want=1)], time.time())  # fmt: skip
    url = f"/admin/asc_tenancy/tenant/{tenant.pk}/timeline/?range=1h"
    response = login(users["platform"]).get(url)
    page = response.content.decode()
    assert page.count('<svg class="asc-timeline"') == 1, "one chart, one time axis"
    assert page.count('class="asc-series"') == 5
    for lane in ("Spend", "Requests", "Time to first token", "Fallbacks", "Policy denials"):
        assert f'data-title="{lane}"' in page
    kinds = [(m.kind, m.label) for m in response.context["events"]]
    assert ("version", "v1") in kinds
    assert ("threshold", "50%") in kinds
    assert ("threshold", "100%") not in kinds
    assert ("circuit", "circuit open") in kinds
    assert page.count('class="asc-mark ') == 3
    assert "/admin/asc_fleet/policysnapshot/1/diff/" in page, "a platform admin may open it"
    assert "snapshot v1 published: first" in page


def test_the_timeline_shows_others_a_versions_number_but_not_its_reason(
    users: dict[str, User], traffic: None
) -> None:
    tenant = Tenant.objects.get(slug="tenant-a")
    page = (
        login(users["auditor"])
        .get(f"/admin/asc_tenancy/tenant/{tenant.pk}/timeline/?range=6h")
        .content.decode()
    )
    assert "snapshot v1 published" in page
    assert "published: first" not in page
    assert "/policysnapshot/1/diff/" not in page
    assert "circuit of mock/mock-1 found open on dp-1" in page


def test_a_tenants_timeline_never_marks_another_tenants_circuits(users: dict[str, User]) -> None:
    report("dp-9", [event("tenant-b", 1, fallbacks=[circuit_attempt("tenant-b")])], "b1")
    tenant = Tenant.objects.get(slug="tenant-a")
    response = login(users["platform"]).get(f"/admin/asc_tenancy/tenant/{tenant.pk}/timeline/")
    assert [m.kind for m in response.context["events"]] == []
    other = Tenant.objects.get(slug="tenant-b")
    assert login(users["tenant_admin"]).get(
        f"/admin/asc_tenancy/tenant/{other.pk}/timeline/"
    ).status_code == 404  # fmt: skip


def test_a_run_of_requests_finding_a_circuit_open_is_one_opening(users: dict[str, User]) -> None:
    t0 = int(datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    attempt = circuit_attempt("tenant-a")
    minute = 60_000
    report("dp-1", [event("tenant-a", 1, ts_ms=t0, fallbacks=[attempt])], "b1")
    report("dp-1", [event("tenant-a", 2, ts_ms=t0 + 2 * minute, fallbacks=[attempt])], "b2")
    report("dp-2", [event("tenant-a", 3, ts_ms=t0 + 2 * minute, fallbacks=[attempt])], "b3")
    report("dp-1", [event("tenant-a", 4, ts_ms=t0 + 30 * minute, fallbacks=[attempt])], "b4")
    failed = control_pb2.Attempt(model_id=attempt.model_id, outcome="status_500")
    report("dp-1", [event("tenant-a", 5, ts_ms=t0, fallbacks=[failed])], "b5")
    runs = [
        (o.node_id, o.requests, int(o.opened_at.timestamp() * 1000) - t0)
        for o in CircuitOpening.objects.order_by("node_id", "opened_at")
    ]
    assert runs == [("dp-1", 2, 0), ("dp-1", 1, 30 * minute), ("dp-2", 1, 2 * minute)]


def test_a_threshold_is_recorded_once_with_its_time_and_old_entries_still_count() -> None:
    limit = Limit.objects.create(
        tenant=factories.tenant("tenant-a"), scope="tenant", kind="budget", period="none",
        amount=Decimal("1"), alert_thresholds=[0.5, 0.8],
    )  # fmt: skip
    now = time.time()
    window, _ = windows.window_of(limit.period, limit.time_zone, now)
    LeaseWindow.objects.create(limit=limit, window=window, alerted=[0.5])  # before times
    for _ in range(2):
        ask = control_pb2.LeaseAsk(limit_id=str(limit.pk), window=window, committed=9 * 10**8)
        acquire("n", [ask], now)
    row = LeaseWindow.objects.get(limit=limit)
    assert alerted_thresholds(row) == [(0.5, None), (0.8, datetime.fromtimestamp(now, UTC))]


def test_the_chart_escapes_text_and_leaves_out_marks_outside_the_range() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    step = timedelta(minutes=1)
    starts = [start + i * step for i in range(10)]
    lanes = [Lane("<b>", "ms", [float(i) for i in range(10)], "#000", "line")]
    marks = [
        Mark(start + 3 * step, "version", "v<3>", "<script>x</script>"),
        Mark(start - timedelta(hours=1), "circuit", "gone", "before the range"),
    ]
    svg = str(timeline_chart(starts, step, lanes, marks))
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    assert "<b>" not in svg
    assert "v&lt;3&gt;" in svg
    assert svg.count('class="asc-mark ') == 1
    assert "gone" not in svg


NOW = datetime(2026, 5, 1, 12, 34, 56, 789000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("query", "since", "until", "name"),
    [
        ({}, "2026-04-30T13:00", "2026-05-01T13:00", "24h"),  # the current hour included
        ({"range": "5m"}, "2026-05-01T12:29:57", "2026-05-01T12:34:57", "5m"),
        ({"range": "nonsense"}, "2026-04-30T13:00", "2026-05-01T13:00", "24h"),
        ({"from": "2026-04-03", "to": "2026-04-01"}, "2026-04-01T00:00", "2026-04-04T00:00", ""),
        ({"from": "2026-04-03"}, "2026-04-03T00:00", "2026-04-04T00:00", ""),
        # zoomed in: widened to whole buckets of the span's size (seconds up to 10 minutes)
        (
            {"since": "2026-05-01T12:00:00.5", "until": "2026-05-01T12:00:20.2"},
            "2026-05-01T12:00:00",
            "2026-05-01T12:00:21",
            "",
        ),
        (
            {"since": "2026-05-01T12:00:30+02:00", "until": "2026-05-01T13:00:00+02:00"},
            "2026-05-01T10:00:00",
            "2026-05-01T11:00:00",
            "",
        ),
        # widening 5h59m30s to minutes makes it longer than 6 hours: aligned to hours
        (
            {"since": "2026-05-01T00:00:45", "until": "2026-05-01T06:00:15"},
            "2026-05-01T00:00",
            "2026-05-01T07:00",
            "",
        ),
        ({"since": "2026-05-01T12:00", "until": "2026-05-01T11:00"}, "2026-04-30T13:00",
         "2026-05-01T13:00", "24h"),  # backwards: the default
        ({"since": "2020-01-01", "until": "2026-01-01"}, "2026-04-30T13:00", "2026-05-01T13:00",
         "24h"),  # more than a year: the default
        ({"since": "yesterday", "until": "2026-01-01"}, "2026-04-30T13:00", "2026-05-01T13:00",
         "24h"),
        # before the calendar's first day in UTC: the default, not an error
        ({"since": "0001-01-01T00:00+05:00", "until": "0001-01-01T01:00+05:00"},
         "2026-04-30T13:00", "2026-05-01T13:00", "24h"),
    ],
)  # fmt: skip
def test_the_timeline_range(query: dict[str, str], since: str, until: str, name: str) -> None:
    got = time_range(query, NOW)
    assert got == (
        datetime.fromisoformat(since).replace(tzinfo=UTC),
        datetime.fromisoformat(until).replace(tzinfo=UTC),
        name,
    )


def test_marks_of_a_kind_whose_labels_would_overlap_share_one() -> None:
    start = datetime(2026, 5, 1, tzinfo=UTC)
    step = timedelta(seconds=1)
    starts = [start + i * step for i in range(600)]
    lanes = [Lane("Requests", "per bucket", [1.0] * 600, "#000")]
    close = [Mark(start + timedelta(seconds=100 + i), "version", f"v{i}", "") for i in (1, 2, 3)]
    far = [Mark(start + timedelta(seconds=400), "version", "v9", "")]
    other_kind = [Mark(start + timedelta(seconds=101), "circuit", "circuit open", "")]
    svg = str(timeline_chart(starts, step, lanes, close + far + other_kind))
    assert svg.count('class="asc-mark asc-mark-version"') == 4, "every mark keeps its line"
    labels = svg.count('class="asc-mark-label ')
    assert labels == 3, "v1…v3, v9, and the circuit on its own row"
    assert "v1…v3" in svg
    assert ">v9<" in svg


def test_the_front_page_asks_as_many_queries_for_many_nodes_and_tenants(
    users: dict[str, User], traffic: None
) -> None:
    rollouts.start(actor=users["platform"], steps=[25, 100], soak_s=60)
    c = login(users["platform"])
    with CaptureQueriesContext(connection) as few:
        c.get("/admin/")
    for i in range(10):
        DataPlaneNode.objects.create(node_id=f"dp-x{i}", connected=True)
        factories.tenant(f"more-{i}")
        attempt = circuit_attempt("tenant-a")
        report(f"dp-x{i}", [event(f"more-{i}", 1, cost=5, fallbacks=[attempt])], f"x{i}")
    with CaptureQueriesContext(connection) as many:
        page = c.get("/admin/").content.decode()
    assert "more-9" in page
    assert "dp-x9" in page
    assert len(many.captured_queries) == len(few.captured_queries)


def test_the_denial_links_open_the_usage_list_filtered(
    users: dict[str, User], traffic: None
) -> None:
    c = login(users["tenant_admin"])
    denied = c.get("/admin/asc_usage/usagerecord/?status_code__gte=400")
    assert denied.status_code == 200, "a filter the admin accepts (not a redirect to ?e=1)"
    assert denied.context["cl"].result_count == 3
    budget = c.get("/admin/asc_usage/usagerecord/?error_code=budget_exceeded")
    assert budget.status_code == 200
    assert budget.context["cl"].result_count == 1
