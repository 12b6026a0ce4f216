"""The permission matrix: every role against every endpoint and operation, on rows of tenant
A, plus a tenant admin of tenant B. Each denial is checked to have changed nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from control_plane.catalog.models import Model, Provider, ProviderCredential, Route
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.fleet.services import publish_snapshot
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Membership, Tenant
from control_plane.usage.services import ingest_batch
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

ROLES = ["platform", "tenant_admin", "developer", "auditor", "outsider"]
MEMBERS_OF_A = {"tenant_admin", "developer", "auditor"}
EVERY_MEMBER = MEMBERS_OF_A | {"outsider"}


@dataclass
class World:
    users: dict[str, User]
    a: dict[str, Any]
    dev_key: VirtualKey


@pytest.fixture
def world() -> World:
    a = factories.stack("tenant-a")
    factories.stack("tenant-b")
    users = {"platform": User.objects.create_superuser("platform", "p@x.io", "pw-1234567")}
    for role in ROLES[1:]:
        users[role] = User.objects.create_user(role, password="pw-1234567")
    for role in MEMBERS_OF_A:
        Membership.objects.create(user=users[role], tenant=a["tenant"], role=role)
    b = Tenant.objects.get(slug="tenant-b")
    Membership.objects.create(user=users["outsider"], tenant=b, role="tenant_admin")
    dev_key, _ = factories.key(a["tenant"], [a["route"]], name="dev-own")
    dev_key.created_by = users["developer"]
    dev_key.save()
    events = [
        control_pb2.UsageEvent(
            request_id=f"r-{k.id}", ts_unix_ms=1, tenant_id=str(k.tenant_id), key_id=str(k.id)
        )
        for k in (a["key"], dev_key)
    ]
    ingest_batch(control_pb2.UsageBatch(batch_id="b", node_id="n", events=events))
    publish_snapshot()
    DataPlaneNode.objects.create(node_id="dp-1")
    return World(users, a, dev_key)


def client(world: World, role: str) -> APIClient:
    c = APIClient()
    c.force_authenticate(world.users[role])
    return c


def state() -> tuple[int, ...]:
    """Everything a denied request must leave as it was."""
    return (
        Tenant.objects.count(),
        Provider.objects.count(),
        Model.objects.count(),
        ProviderCredential.objects.count(),
        Route.objects.count(),
        VirtualKey.objects.count(),
        VirtualKey.objects.filter(revoked_at__isnull=False).count(),
        PolicySnapshot.objects.count(),
        hash(tuple(Tenant.objects.values_list("name", "active"))),
        hash(tuple(Route.objects.values_list("name", flat=True))),
        hash(tuple(VirtualKey.objects.values_list("name", flat=True))),
        hash(tuple(ProviderCredential.objects.values_list("name", "secret_hint"))),
        hash(tuple(Provider.objects.values_list("name", "enabled"))),
    )


# endpoint -> (object of tenant A, roles that may see it, roles that may change it)
def targets(w: World) -> dict[str, tuple[Any, set[str], set[str]]]:
    a = w.a
    return {
        "tenants": (a["tenant"], {"platform"} | MEMBERS_OF_A, {"platform", "tenant_admin"}),
        "providers": (a["provider"], {"platform"} | EVERY_MEMBER, {"platform"}),
        "models": (a["model"], {"platform"} | EVERY_MEMBER, {"platform"}),
        "credentials": (
            a["credential"],
            {"platform", "tenant_admin"},
            {"platform", "tenant_admin"},
        ),
        "routes": (a["route"], {"platform"} | MEMBERS_OF_A, {"platform", "tenant_admin"}),
        "keys": (a["key"], {"platform", "tenant_admin", "auditor"}, {"platform", "tenant_admin"}),
        "keys-own": (
            w.dev_key,
            {"platform"} | MEMBERS_OF_A,
            {"platform", "tenant_admin", "developer"},
        ),
        "snapshots": (PolicySnapshot.objects.first(), {"platform"}, set()),
        "nodes": (DataPlaneNode.objects.get(), {"platform"}, set()),
    }


def url(endpoint: str, obj: Any) -> str:
    return f"/api/v1/{endpoint.removesuffix('-own')}/{obj.pk}/"


PATCHES: dict[str, Callable[[World], dict[str, Any]]] = {
    "tenants": lambda w: {"name": "Renamed"},
    "providers": lambda w: {"enabled": False},
    "models": lambda w: {"region": "us"},
    "credentials": lambda w: {"name": "renamed", "secret": "sk-new-secret-000000"},
    "routes": lambda w: {"name": "renamed"},
    "keys": lambda w: {"name": "renamed"},
    "keys-own": lambda w: {"name": "renamed"},
}


@pytest.mark.parametrize("role", ROLES)
def test_retrieve(world: World, role: str) -> None:
    for endpoint, (obj, viewers, _) in targets(world).items():
        response = client(world, role).get(url(endpoint, obj))
        expected = 200 if role in viewers else 404
        assert response.status_code == expected, (endpoint, role, response.content)


@pytest.mark.parametrize("role", ROLES)
def test_update_and_a_denial_changes_nothing(world: World, role: str) -> None:
    for endpoint, patch in PATCHES.items():
        obj, viewers, changers = targets(world)[endpoint]
        before = state()
        response = client(world, role).patch(url(endpoint, obj), patch(world), format="json")
        expected = 200 if role in changers else 403 if role in viewers else 404
        assert response.status_code == expected, (endpoint, role, response.content)
        if expected != 200:
            assert state() == before, (endpoint, role)


@pytest.mark.parametrize("role", ROLES)
def test_revoke(world: World, role: str) -> None:
    for endpoint in ("keys", "keys-own"):
        obj, viewers, changers = targets(world)[endpoint]
        before = state()
        response = client(world, role).post(url(endpoint, obj) + "revoke/")
        expected = 200 if role in changers else 403 if role in viewers else 404
        assert response.status_code == expected, (endpoint, role, response.content)
        if expected != 200:
            assert state() == before, (endpoint, role)


@pytest.mark.parametrize("role", ROLES)
def test_delete(world: World, role: str) -> None:
    for endpoint in ("routes", "credentials", "models", "providers", "tenants"):
        obj, viewers, changers = targets(world)[endpoint]
        before = state()
        response = client(world, role).delete(url(endpoint, obj))
        if role in changers:
            # platform-wide and tenant rows are protected while routes use them: 409 is fine
            assert response.status_code in (204, 409), (endpoint, role, response.content)
            return
        expected = 403 if role in viewers else 404
        assert response.status_code == expected, (endpoint, role, response.content)
        assert state() == before, (endpoint, role)


def create_bodies(w: World) -> dict[str, tuple[dict[str, Any], set[str]]]:
    a = w.a
    t, r = str(a["tenant"].id), str(a["route"].id)
    target = {"model": str(a["model"].id), "credential": str(a["credential"].id)}
    return {
        "tenants": ({"slug": "new-tenant", "name": "New"}, {"platform"}),
        "providers": ({"name": "new-provider", "kind": "mock"}, {"platform"}),
        "models": ({"provider": str(a["provider"].id), "provider_model": "m-2"}, {"platform"}),
        "credentials": (
            {
                "tenant": t,
                "provider": str(a["provider"].id),
                "name": "n",
                "secret": "sk-0123456789",
            },
            {"platform", "tenant_admin"},
        ),
        "routes": (
            {"tenant": t, "name": "new-route", "targets": [target]},
            {"platform", "tenant_admin"},
        ),
        "keys": (
            {"tenant": t, "name": "new-key", "routes": [r]},
            {"platform", "tenant_admin", "developer"},
        ),
    }


@pytest.mark.parametrize("role", ROLES)
def test_create_and_a_denial_changes_nothing(world: World, role: str) -> None:
    visible = targets(world)
    for endpoint, (body, creators) in create_bodies(world).items():
        before = state()
        response = client(world, role).post(f"/api/v1/{endpoint}/", body, format="json")
        if role in creators:
            assert response.status_code == 201, (endpoint, role, response.content)
            continue
        # Validation comes first: a row the role cannot see (tenant A for an outsider, a
        # credential for a developer) "does not exist" (400); otherwise the role is refused.
        sees_all = role in visible["tenants"][1] and (
            endpoint != "routes" or role in visible["credentials"][1]
        )
        expected = 403 if sees_all or "tenant" not in body else 400
        assert response.status_code == expected, (endpoint, role, response.content)
        assert state() == before, (endpoint, role)


@pytest.mark.parametrize("role", ROLES)
def test_lists_hold_only_visible_rows(world: World, role: str) -> None:
    c = client(world, role)
    tenants = {t["slug"] for t in c.get("/api/v1/tenants/").json()["results"]}
    keys = {k["name"] for k in c.get("/api/v1/keys/?limit=100").json()["results"]}
    usage = {u["key"] for u in c.get("/api/v1/usage/?limit=100").json()["results"]}
    expected_tenants = {
        "platform": {"tenant-a", "tenant-b"},
        "outsider": {"tenant-b"},
    }.get(role, {"tenant-a"})
    assert tenants == expected_tenants
    expected_keys = {
        "platform": {"app", "dev-own"},  # both tenants' "app" keys share a name
        "tenant_admin": {"app", "dev-own"},
        "auditor": {"app", "dev-own"},
        "developer": {"dev-own"},
        "outsider": {"app"},
    }[role]
    assert keys == expected_keys
    if role == "developer":
        assert usage == {str(world.dev_key.id)}, "a developer sees only their own keys' usage"
    if role == "outsider":
        assert usage == set(), "no usage of tenant B was recorded"


def test_a_tenant_admin_cannot_move_a_route_to_another_tenant(world: World) -> None:
    b = Tenant.objects.get(slug="tenant-b")
    before = state()
    response = client(world, "tenant_admin").patch(
        url("routes", world.a["route"]), {"tenant": str(b.id)}, format="json"
    )
    assert response.status_code == 400, response.content  # tenant B does not exist for them
    assert state() == before


def test_a_foreign_credential_id_reads_as_missing(world: World) -> None:
    b_cred = ProviderCredential.objects.get(tenant__slug="tenant-b")
    body = {
        "tenant": str(world.a["tenant"].id),
        "name": "sneaky",
        "targets": [{"model": str(world.a["model"].id), "credential": str(b_cred.id)}],
    }
    response = client(world, "tenant_admin").post("/api/v1/routes/", body, format="json")
    assert response.status_code == 400
    assert "does not exist" in str(response.json()["error"]["details"])
    assert "tenant-b" not in response.content.decode()
