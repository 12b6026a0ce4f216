"""The admin, per role: what pages list, what a denial leaves unchanged (which page opens for
whom is in the permission matrix, test_permissions.py); the fleet page, the tenant timeline with
its charts, and key creation showing the secret once."""

from __future__ import annotations

import time
from typing import Any

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


def change_form_data(response: Any) -> dict[str, Any]:
    """What the browser would post back from a change page as shown: the object's fields and
    every inline formset with its management form."""
    data: dict[str, Any] = {}
    form = response.context["adminform"].form
    for name, _field in form.fields.items():
        value = form[name].value()
        if value is not None:
            data[name] = value if not isinstance(value, list) else [str(v) for v in value]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for sub in formset.forms:
            for name in sub.fields:
                value = sub[name].value()
                if value is not None and value is not False:
                    data[f"{sub.prefix}-{name}"] = value
    return {k: "" if v is None else v for k, v in data.items()}


def test_the_tenant_page_holds_what_each_role_may_see(users: dict[str, User]) -> None:
    tenant = Tenant.objects.get(slug="tenant-a")
    url = f"/admin/asc_tenancy/tenant/{tenant.pk}/change/"
    admin_page = login(users["tenant_admin"]).get(url).content.decode()
    for section in ("Memberships", "SSO groups", "Budgets and rate limits", "Routes", "Keys"):
        assert section in admin_page, section
    assert "mock:mock-1@eu (0, 1)" in admin_page, "a route's targets, on the tenant page"
    assert "Provider credentials" in admin_page
    developer_page = login(users["developer"]).get(url).content.decode()
    assert "Routes" in developer_page
    assert "Memberships" not in developer_page, "developers do not see who holds which role"
    assert "Provider credentials" not in developer_page


@pytest.mark.django_db(transaction=True)  # saved and published on commit
def test_a_tenant_admin_adds_a_member_by_name_on_the_tenant_page(users: dict[str, User]) -> None:
    User.objects.create_user("newcomer", password="pw-1234567")
    tenant = Tenant.objects.get(slug="tenant-a")
    url = f"/admin/asc_tenancy/tenant/{tenant.pk}/change/"
    c = login(users["tenant_admin"])
    data = change_form_data(c.get(url))
    total = int(data["memberships-TOTAL_FORMS"])
    data.update(
        {
            "memberships-TOTAL_FORMS": total + 1,
            f"memberships-{total}-user": "newcomer",
            f"memberships-{total}-role": "auditor",
        }
    )
    response = c.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    member = Membership.objects.get(user__username="newcomer")
    assert (member.tenant_id, member.role, member.source) == (tenant.pk, "auditor", "local")


def test_the_tenants_configuration_exports_from_the_admin(users: dict[str, User]) -> None:
    tenant = Tenant.objects.get(slug="tenant-a")
    other = Tenant.objects.get(slug="tenant-b")
    response = login(users["tenant_admin"]).post(
        "/admin/asc_tenancy/tenant/",
        {"action": "export_configuration", "_selected_action": [tenant.pk, other.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml"
    text = response.content.decode()
    assert "slug: tenant-a" in text
    assert "tenant-b" not in text, "only tenants the user administers"


def test_bulk_actions_revoke_keys_and_switch_providers_within_the_role(
    users: dict[str, User],
) -> None:
    a_key = VirtualKey.objects.get(tenant__slug="tenant-a", name="app")
    b_key = VirtualKey.objects.get(tenant__slug="tenant-b", name="app")
    c = login(users["tenant_admin"])
    c.post(
        "/admin/asc_keys/virtualkey/",
        {"action": "revoke", "_selected_action": [a_key.pk, b_key.pk]},
    )
    a_key.refresh_from_db()
    b_key.refresh_from_db()
    assert a_key.revoked_at is not None
    assert b_key.revoked_at is None, "another tenant's key, though its id was sent"

    provider = a_key.routes.first().targets.first().model.provider  # type: ignore[union-attr]
    c.post(  # the action is not offered to a tenant admin: nothing happens
        "/admin/asc_catalog/provider/",
        {"action": "disable_providers", "_selected_action": [provider.pk]},
    )
    provider.refresh_from_db()
    assert provider.enabled
    platform = login(users["platform"])
    for action, enabled in [("disable_providers", False), ("enable_providers", True)]:
        platform.post(
            "/admin/asc_catalog/provider/", {"action": action, "_selected_action": [provider.pk]}
        )
        provider.refresh_from_db()
        assert provider.enabled is enabled
