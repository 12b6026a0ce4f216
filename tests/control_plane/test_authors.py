"""The snapshot history names who made each change (``PolicySnapshot.created_by``), whether it
was made in the admin (a change form, a tenant page's inline, an action, a rollback), through
the REST API or by a configuration import, for every kind of row: a write that forgot to pass
its user down publishes a version without an author, and fails here."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from control_plane.config.services import export_yaml
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import publish_snapshot
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys.models import VirtualKey
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Membership
from tests.control_plane import factories
from tests.control_plane.test_admin import change_form_data

pytestmark = pytest.mark.django_db(transaction=True)  # publishing runs on commit


@dataclass
class World:
    rows: dict[str, Any]
    users: dict[str, User]
    tmp: Path

    def admin(self, who: str) -> Client:
        client = Client()
        client.force_login(self.users[who])
        return client

    def api(self, who: str) -> APIClient:
        client = APIClient()
        client.force_authenticate(self.users[who])
        return client


@pytest.fixture
def world(tmp_path: Path) -> World:
    rows: dict[str, Any] = factories.stack("acme")
    users = {"root": User.objects.create_superuser("root", "root@x.io", "pw-1234567")}
    for name, role in [("alice", "tenant_admin"), ("dev", "developer")]:
        users[name] = User.objects.create_user(name, password="pw-1234567", is_staff=True)
        Membership.objects.create(user=users[name], tenant=rows["tenant"], role=role)
    rows["guardrail"] = GuardrailPolicy.objects.create(tenant=rows["tenant"], name="pii")
    rows["limit"] = Limit.objects.create(tenant=rows["tenant"], amount=100)
    publish_snapshot("before")
    return World(rows, users, tmp_path)


def author_of(change: Callable[[], Any]) -> str | None:
    """Make ``change``; the user the new snapshot version names as its author."""
    before = PolicySnapshot.objects.order_by("-version").first()
    assert before is not None
    change()
    latest = PolicySnapshot.objects.order_by("-version").first()
    assert latest is not None
    assert latest.version > before.version, "the change published a new version"
    return latest.created_by.username if latest.created_by else None


def ok(response: Any, status: int = 302) -> Any:
    context = getattr(response, "context", None)
    errors = context.get("errors") if context else getattr(response, "content", b"")[:500]
    assert response.status_code == status, errors
    return response


def admin_form(world: World, who: str, url: str, **changes: Any) -> None:
    """Post an admin form back as shown, with ``changes``."""
    client = world.admin(who)
    data = change_form_data(ok(client.get(url), 200))
    ok(client.post(url, {**data, **changes}))


# --- the admin -----------------------------------------------------------------------------


def admin_route(w: World) -> None:
    url = f"/admin/asc_catalog/route/{w.rows['route'].pk}/change/"
    admin_form(w, "alice", url, max_retries=3)


def admin_route_targets(w: World) -> None:
    """A platform admin changes a route's targets, in its inline."""
    url = f"/admin/asc_catalog/route/{w.rows['route'].pk}/change/"
    admin_form(w, "root", url, **{"targets-0-weight": "5"})
    assert w.rows["route"].targets.get().weight == 5


def admin_key(w: World) -> None:
    route, tenant = w.rows["route"], w.rows["tenant"]
    url = "/admin/asc_keys/virtualkey/add/"
    ok(w.admin("dev").post(url, {"tenant": tenant.pk, "name": "new", "routes": [route.pk]}))


def admin_key_revoked(w: World) -> None:
    action = {"action": "revoke", "_selected_action": [w.rows["key"].pk]}
    ok(w.admin("alice").post("/admin/asc_keys/virtualkey/", action))


def admin_guardrail(w: World) -> None:
    url = f"/admin/asc_guardrails/guardrailpolicy/{w.rows['guardrail'].pk}/change/"
    admin_form(w, "alice", url, default_action="block")


def admin_limit(w: World) -> None:
    admin_form(w, "alice", f"/admin/asc_limits/limit/{w.rows['limit'].pk}/change/", amount="7")


def admin_limit_deleted(w: World) -> None:
    action = {"action": "delete_selected", "_selected_action": [w.rows["limit"].pk], "post": "yes"}
    ok(w.admin("alice").post("/admin/asc_limits/limit/", action))


def admin_limit_inline(w: World) -> None:
    """A limit added on the tenant's page, in its inline."""
    url = f"/admin/asc_tenancy/tenant/{w.rows['tenant'].pk}/change/"
    client = w.admin("alice")
    data = change_form_data(ok(client.get(url), 200))
    n = int(data["limits-TOTAL_FORMS"])
    data.update({"limits-TOTAL_FORMS": n + 1, f"limits-{n}-scope": "tenant"})
    data.update({f"limits-{n}-kind": "requests", f"limits-{n}-amount": "60"})
    data.update({f"limits-{n}-period": "minute", f"limits-{n}-enabled": "on"})
    ok(client.post(url, data))
    assert Limit.objects.filter(kind="requests").exists()


def admin_provider_disabled(w: World) -> None:
    action = {"action": "disable_providers", "_selected_action": [w.rows["provider"].pk]}
    ok(w.admin("root").post("/admin/asc_catalog/provider/", action))


def admin_rollback(w: World) -> None:
    first = PolicySnapshot.objects.order_by("version").first()
    assert first is not None
    w.rows["route"].delete()
    publish_snapshot("the route deleted by hand")
    ok(w.admin("root").post(f"/admin/asc_fleet/policysnapshot/{first.version}/rollback/"))


# --- the REST API --------------------------------------------------------------------------


def api_route(w: World) -> None:
    route = w.rows["route"]
    ok(w.api("alice").patch(f"/api/v1/routes/{route.pk}/", {"max_retries": 4}, format="json"), 200)


def api_key(w: World) -> None:
    body = {"tenant": str(w.rows["tenant"].pk), "name": "new", "routes": [str(w.rows["route"].pk)]}
    ok(w.api("dev").post("/api/v1/keys/", body, format="json"), 201)


def api_key_revoked(w: World) -> None:
    ok(w.api("alice").post(f"/api/v1/keys/{w.rows['key'].pk}/revoke/"), 200)


def api_guardrail(w: World) -> None:
    body = {"tenant": str(w.rows["tenant"].pk), "route": str(w.rows["route"].pk), "name": "r"}
    ok(w.api("alice").post("/api/v1/guardrails/", body, format="json"), 201)


def api_limit(w: World) -> None:
    body = {"tenant": str(w.rows["tenant"].pk), "kind": "tokens", "amount": "1000"}
    ok(w.api("alice").post("/api/v1/limits/", body, format="json"), 201)


def api_limit_deleted(w: World) -> None:
    ok(w.api("alice").delete(f"/api/v1/limits/{w.rows['limit'].pk}/"), 204)


# --- the configuration importer ------------------------------------------------------------


def changed_document(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The acme tenant's configuration as exported, with ``edit`` made to the tenant."""
    document: dict[str, Any] = yaml.safe_load(export_yaml("acme"))
    (tenant,) = document["tenants"]
    edit(tenant)
    return document


def retried(tenant: dict[str, Any]) -> None:
    tenant["routes"][0]["max_retries"] = 5


def key_renamed(tenant: dict[str, Any]) -> None:
    tenant["keys"][0]["name"] = "renamed"


def guardrail_blocks(tenant: dict[str, Any]) -> None:
    tenant["guardrail"]["default_action"] = "block"


def rate_limited(tenant: dict[str, Any]) -> None:
    tenant.setdefault("limits", []).append({"kind": "requests", "amount": "60"})


def api_import(edit: Callable[[dict[str, Any]], None]) -> Callable[[World], None]:
    def change(w: World) -> None:
        body = {"document": changed_document(edit), "tenant": "acme"}
        response = ok(w.api("alice").post("/api/v1/config/import/", body, format="json"), 200)
        assert response.json()["changes"], "the document changed something"

    return change


def command_import(edit: Callable[[dict[str, Any]], None]) -> Callable[[World], None]:
    def change(w: World) -> None:
        path = w.tmp / "acme.yaml"
        path.write_text(yaml.safe_dump(changed_document(edit)))
        out = io.StringIO()
        call_command("asc_import", str(path), "--tenant", "acme", "--user", "root", stdout=out)
        assert "made 0 change" not in out.getvalue()

    return change


CHANGES: dict[str, tuple[Callable[[World], None], str]] = {
    "admin route": (admin_route, "alice"),
    "admin route targets": (admin_route_targets, "root"),
    "admin key": (admin_key, "dev"),
    "admin key revoked": (admin_key_revoked, "alice"),
    "admin guardrail": (admin_guardrail, "alice"),
    "admin limit": (admin_limit, "alice"),
    "admin limit deleted": (admin_limit_deleted, "alice"),
    "admin limit on the tenant page": (admin_limit_inline, "alice"),
    "admin provider disabled": (admin_provider_disabled, "root"),
    "admin rollback": (admin_rollback, "root"),
    "api route": (api_route, "alice"),
    "api key": (api_key, "dev"),
    "api key revoked": (api_key_revoked, "alice"),
    "api guardrail": (api_guardrail, "alice"),
    "api limit": (api_limit, "alice"),
    "api limit deleted": (api_limit_deleted, "alice"),
    "api import route": (api_import(retried), "alice"),
    "api import key": (api_import(key_renamed), "alice"),
    "api import guardrail": (api_import(guardrail_blocks), "alice"),
    "api import limit": (api_import(rate_limited), "alice"),
    "asc_import route": (command_import(retried), "root"),
    "asc_import key": (command_import(key_renamed), "root"),
    "asc_import guardrail": (command_import(guardrail_blocks), "root"),
    "asc_import limit": (command_import(rate_limited), "root"),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_the_author_of_each_change_is_in_the_history(name: str, world: World) -> None:
    change, author = CHANGES[name]
    assert author_of(lambda: change(world)) == author


def test_an_import_by_command_without_a_user_is_the_systems(world: World) -> None:
    path = world.tmp / "acme.yaml"
    path.write_text(yaml.safe_dump(changed_document(retried)))
    assert author_of(lambda: call_command("asc_import", str(path), stdout=io.StringIO())) is None


def test_a_key_made_by_one_user_and_revoked_by_another(world: World) -> None:
    """The key's creator is who created it; the revocation's author, who revoked it."""
    author_of(lambda: api_key(world))
    key = VirtualKey.objects.get(name="new")
    assert key.created_by == world.users["dev"]
    revoke = f"/api/v1/keys/{key.pk}/revoke/"
    assert author_of(lambda: ok(world.api("alice").post(revoke), 200)) == "alice"
    key.refresh_from_db()
    assert key.created_by == world.users["dev"]


def test_an_import_and_a_rollback_head_the_reason(world: World) -> None:
    """Their own reason comes first, before the reasons of the rows they wrote."""
    api_import(retried)(world)
    latest = PolicySnapshot.objects.order_by("-version").first()
    assert latest is not None
    assert latest.reason.startswith("configuration imported through the API; route acme/chat")
    admin_rollback(world)
    latest = PolicySnapshot.objects.order_by("-version").first()
    assert latest is not None
    assert latest.reason.startswith("rollback to v1; ")
