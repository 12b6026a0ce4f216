"""The admin, per role: which pages open, what they list, what a denial leaves unchanged;
the fleet page, the tenant timeline with its charts, and key creation showing the secret once."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import User
from django.test import Client

from control_plane.catalog.models import Route
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.fleet.services import publish_snapshot
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Membership, Tenant
from control_plane.usage.services import ingest_batch
from shared.crypto import hash_key
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

CHANGELISTS = {
    "asc_tenancy/tenant": {"platform", "tenant_admin", "developer", "auditor", "outsider"},
    "asc_catalog/provider": {"platform", "tenant_admin", "developer", "auditor", "outsider"},
    "asc_catalog/model": {"platform", "tenant_admin", "developer", "auditor", "outsider"},
    "asc_catalog/providercredential": {"platform", "tenant_admin", "outsider"},
    "asc_catalog/route": {"platform", "tenant_admin", "developer", "auditor", "outsider"},
    "asc_keys/virtualkey": {"platform", "tenant_admin", "developer", "auditor", "outsider"},
    "asc_usage/usagerecord": {"platform", "tenant_admin", "developer", "auditor", "outsider"},
    "asc_fleet/policysnapshot": {"platform"},
    "asc_fleet/dataplanenode": {"platform"},
}
ROLES = ["platform", "tenant_admin", "developer", "auditor", "outsider"]


@pytest.fixture
def users() -> dict[str, User]:
    a = factories.stack("tenant-a")
    factories.stack("tenant-b")
    out = {"platform": User.objects.create_superuser("platform", "p@x.io", "pw-1234567")}
    for role in ROLES[1:]:
        out[role] = User.objects.create_user(role, password="pw-1234567", is_staff=True)
    for role in ("tenant_admin", "developer", "auditor"):
        Membership.objects.create(user=out[role], tenant=a["tenant"], role=role)
    b = Tenant.objects.get(slug="tenant-b")
    Membership.objects.create(user=out["outsider"], tenant=b, role="tenant_admin")
    return out


def login(user: User) -> Client:
    c = Client()
    c.force_login(user)
    return c


@pytest.mark.parametrize("role", ROLES)
def test_changelists_open_only_for_roles_that_may_see_them(
    users: dict[str, User], role: str
) -> None:
    c = login(users[role])
    for page, allowed in CHANGELISTS.items():
        response = c.get(f"/admin/{page}/")
        assert response.status_code == (200 if role in allowed else 403), (page, role)


def test_tenant_admin_lists_only_their_tenant_and_cannot_open_another(
    users: dict[str, User],
) -> None:
    c = login(users["tenant_admin"])
    page = c.get("/admin/asc_catalog/route/").content.decode()
    assert "tenant-a" in page
    assert "tenant-b" not in page
    other = Route.objects.get(tenant__slug="tenant-b")
    assert c.get(f"/admin/asc_catalog/route/{other.pk}/change/").status_code == 302  # "not found"
    name_before = other.name
    c.post(f"/admin/asc_catalog/route/{other.pk}/change/", {"name": "hijacked"})
    other.refresh_from_db()
    assert other.name == name_before


def test_auditor_cannot_change_a_route(users: dict[str, User]) -> None:
    route = Route.objects.get(tenant__slug="tenant-a")
    c = login(users["auditor"])
    assert c.get(f"/admin/asc_catalog/route/{route.pk}/change/").status_code == 200  # view only
    c.post(f"/admin/asc_catalog/route/{route.pk}/change/", {"tenant": route.tenant_id, "name": "x"})
    route.refresh_from_db()
    assert route.name == "chat"


def test_tenant_choices_are_limited_to_the_users_tenants(users: dict[str, User]) -> None:
    page = login(users["tenant_admin"]).get("/admin/asc_catalog/route/add/").content.decode()
    assert "tenant-a" in page
    assert "tenant-b" not in page


@pytest.mark.django_db(transaction=True)  # the key is created and published on commit
def test_creating_a_key_in_the_admin_shows_its_secret_once(users: dict[str, User]) -> None:
    route = Route.objects.get(tenant__slug="tenant-a")
    c = login(users["developer"])
    response = c.post(
        "/admin/asc_keys/virtualkey/add/",
        {"tenant": route.tenant_id, "name": "from-admin", "routes": [route.pk]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    secret = next(m.split("once: ")[1].split(".")[0] for m in shown if "once: " in m)
    key = VirtualKey.objects.get(name="from-admin")
    assert key.key_hash == hash_key(secret)
    assert key.created_by == users["developer"]
    assert secret not in c.get(f"/admin/asc_keys/virtualkey/{key.pk}/change/").content.decode()
    assert PolicySnapshot.objects.exists()


def test_fleet_page_shows_version_lag(users: dict[str, User]) -> None:
    publish_snapshot("one")
    factories.tenant("tenant-c")
    latest = publish_snapshot("two").snapshot.version
    DataPlaneNode.objects.create(node_id="dp-behind", applied_version=latest - 1, connected=True)
    page = login(users["platform"]).get("/admin/asc_fleet/dataplanenode/").content.decode()
    assert "dp-behind" in page
    assert '<td class="field-lag">1</td>' in page


def test_tenant_timeline_draws_charts_for_the_range(users: dict[str, User]) -> None:
    tenant = Tenant.objects.get(slug="tenant-a")
    now_ms = int(time.time() * 1000)
    events = [
        control_pb2.UsageEvent(
            request_id=f"r{i}",
            ts_unix_ms=now_ms - i * 120_000,
            tenant_id=str(tenant.id),
            cost_nano_usd=1_000_000,
            ttft_ms=40 + i,
            status_code=403 if i == 3 else 200,
        )
        for i in range(6)
    ]
    ingest_batch(control_pb2.UsageBatch(batch_id="b", node_id="n", events=events))
    c = login(users["auditor"])
    page = c.get(f"/admin/asc_tenancy/tenant/{tenant.pk}/timeline/").content.decode()
    assert page.count('class="asc-series"') == 5, "five charts drawn"
    assert "6 requests" in page
    assert "1 denials" in page
    empty = c.get(f"/admin/asc_tenancy/tenant/{tenant.pk}/timeline/?from=2001-01-01&to=2001-01-02")
    assert "0 requests" in empty.content.decode(), "a range without usage has empty buckets"
    other = Tenant.objects.get(slug="tenant-b")
    assert c.get(f"/admin/asc_tenancy/tenant/{other.pk}/timeline/").status_code == 404
