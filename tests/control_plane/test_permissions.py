"""The permission matrix: every API operation and every admin page, for each role of tenant A
(platform admin, tenant admin, developer, auditor) and for a tenant admin of tenant B.

The API operations are read from the OpenAPI schema, so an endpoint without a row here fails
``test_every_api_operation_has_a_row``; the admin pages come from the admin site's registry in
the same way. Each cell is the expected status; every denial is checked to have changed no row
of any table and to have asked for no snapshot publish. Each role runs on the same world inside
a savepoint that is rolled back, so a permitted write never leaks into the next role's run.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from control_plane.catalog.models import Model, Provider, ProviderCredential, RouteGroup
from control_plane.config.services import export_yaml
from control_plane.fleet.models import DataPlaneNode, PolicySnapshot
from control_plane.fleet.services import publish_snapshot
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits.models import Limit
from control_plane.rollouts.models import Rollout
from control_plane.sso.models import SsoGroup
from control_plane.tenancy.models import Membership, Project, Tenant
from control_plane.usage.models import UsageRecord
from control_plane.usage.services import ingest_batch
from shared.audit import seal
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

ROLES = ("platform", "tenant_admin", "developer", "auditor", "outsider")
UPSTREAM = "http://127.0.0.1:9/v1"  # an OpenAI-compatible provider the platform set up
JWKS = {"keys": [{"kty": "RSA", "kid": "k1", "n": "sXch", "e": "AQAB"}]}


@dataclass
class World:
    users: dict[str, User]
    rows: dict[str, Any]  # subjects of tenant A by name


def build_world() -> World:
    a = factories.stack("tenant-a")
    b = factories.stack("tenant-b")
    users = {"platform": User.objects.create_superuser("platform", "p@x.io", "pw-1234567")}
    for role in ROLES[1:]:
        users[role] = User.objects.create_user(role, password="pw-1234567", is_staff=True)
    tenant: Tenant = a["tenant"]  # type: ignore[assignment]
    for role in ("tenant_admin", "developer", "auditor"):
        Membership.objects.create(user=users[role], tenant=tenant, role=role)
    Membership.objects.create(user=users["outsider"], tenant=b["tenant"], role="tenant_admin")
    User.objects.create_user("newcomer", password="pw-1234567")
    upstream = Provider.objects.create(name="upstream", kind="openai_compatible", base_url=UPSTREAM)
    Model.objects.create(provider=upstream, provider_model="gpt-4o")
    own_key, _ = factories.key(tenant, [a["route"]], name="dev-own")  # type: ignore[list-item]
    own_key.created_by = users["developer"]
    own_key.save()
    project = Project.objects.create(tenant=tenant, name="search")
    route_group = RouteGroup.objects.create(tenant=tenant, name="all-chat")
    route_group.routes.set([a["route"]])
    limit = Limit.objects.create(tenant=tenant, amount=100)
    guardrail = GuardrailPolicy.objects.create(tenant=tenant, name="tenant-wide")
    idp = IdentityProvider.objects.create(
        tenant=tenant, name="corp", issuer="https://idp.a.example", audience="asc", jwks=JWKS
    )
    _usage_and_audit(tenant, a["key"], own_key)  # type: ignore[arg-type]
    publish_snapshot("world")
    node = DataPlaneNode.objects.create(node_id="dp-1", applied_version=1)
    rollout = Rollout.objects.create(
        baseline=1, steps=[100], soak_s=0, step_started_at=timezone.now(), state="completed"
    )
    rows = {
        **a,
        "own_key": own_key,
        "project": project,
        "route_group": route_group,
        "limit": limit,
        "guardrail": guardrail,
        "idp": idp,
        "usage": UsageRecord.objects.get(key_id=a["key"].pk),  # type: ignore[attr-defined]
        "own_usage": UsageRecord.objects.get(key_id=own_key.pk),
        "audit": apps.get_model("asc_audit", "AuditRecord").objects.get(),
        "snapshot": PolicySnapshot.objects.get(),
        "node": node,
        "rollout": rollout,
        "membership": Membership.objects.get(user=users["developer"]),
        "sso_group": SsoGroup.objects.create(tenant=tenant, group="a-devs", role="developer"),
    }
    return World(users, rows)


def _usage_and_audit(tenant: Tenant, key: VirtualKey, own_key: VirtualKey) -> None:
    now_ms = int(time.time() * 1000)
    events = [
        control_pb2.UsageEvent(
            request_id=f"r-{k.name}", ts_unix_ms=now_ms, tenant_id=str(tenant.id), key_id=str(k.id)
        )
        for k in (key, own_key)
    ]
    record = control_pb2.AuditRecord(chain_id="dp-1:boot", event=events[0], decision="allowed")
    seal(record, "", 1)
    ingest_batch(
        control_pb2.UsageBatch(batch_id="b", node_id="dp-1", events=events, audit=[record])
    )


@pytest.fixture
def world() -> World:
    return build_world()


def state() -> dict[str, list[Any]]:
    """Every row of every table a request could touch, to compare before and after a denial."""
    out = {}
    for model in apps.get_models():
        if model._meta.app_label.startswith("asc_") or model._meta.app_label in {
            "auth",
            "authtoken",
        }:
            rows = model._default_manager.order_by("pk").values_list()
            out[model._meta.label] = [
                tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in rows
            ]
    return out


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """Run a block in a savepoint and undo whatever it wrote."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def compare(before: dict[str, list[Any]], after: dict[str, list[Any]]) -> list[str]:
    return [label for label in before if before[label] != after.get(label)]


# --- the API ------------------------------------------------------------------------------
# (method, path under /api/v1/, subject) -> expected status for each role, in ROLES order:
#  platform admin, tenant admin of A, developer of A, auditor of A, tenant admin of B.
# The subject is the row of tenant A named in the path: "key" was made by a tenant admin,
# "own_key" by the developer; "usage" and "own_usage" are those keys' usage.
API: dict[tuple[str, str, str], tuple[int, int, int, int, int]] = {
    ("GET", "schema/", ""): (200, 200, 200, 200, 200),
    # tenants: a tenant admin runs theirs; only the platform creates and deletes tenants
    ("GET", "tenants/", ""): (200, 200, 200, 200, 200),
    ("POST", "tenants/", ""): (201, 403, 403, 403, 403),
    ("GET", "tenants/{id}/", "tenant"): (200, 200, 200, 200, 404),
    ("PUT", "tenants/{id}/", "tenant"): (200, 200, 403, 403, 404),
    ("PATCH", "tenants/{id}/", "tenant"): (200, 200, 403, 403, 404),
    ("DELETE", "tenants/{id}/", "tenant"): (204, 403, 403, 403, 403),
    # providers and models: platform-wide, read by every member
    ("GET", "providers/", ""): (200, 200, 200, 200, 200),
    ("POST", "providers/", ""): (201, 403, 403, 403, 403),
    ("GET", "providers/{id}/", "provider"): (200, 200, 200, 200, 200),
    ("PUT", "providers/{id}/", "provider"): (200, 403, 403, 403, 403),
    ("PATCH", "providers/{id}/", "provider"): (200, 403, 403, 403, 403),
    ("DELETE", "providers/{id}/", "provider"): (409, 403, 403, 403, 403),  # models use it
    ("GET", "models/", ""): (200, 200, 200, 200, 200),
    ("POST", "models/", ""): (201, 403, 403, 403, 403),
    ("GET", "models/{id}/", "model"): (200, 200, 200, 200, 200),
    ("PUT", "models/{id}/", "model"): (200, 403, 403, 403, 403),
    ("PATCH", "models/{id}/", "model"): (200, 403, 403, 403, 403),
    ("DELETE", "models/{id}/", "model"): (409, 403, 403, 403, 403),  # routes use it
    # credentials: tenant admins only (an outsider naming tenant A: "no such tenant", 400)
    ("GET", "credentials/", ""): (200, 200, 200, 200, 200),
    ("POST", "credentials/", ""): (201, 201, 403, 403, 400),
    ("GET", "credentials/{id}/", "credential"): (200, 200, 404, 404, 404),
    ("PUT", "credentials/{id}/", "credential"): (200, 200, 403, 403, 404),
    ("PATCH", "credentials/{id}/", "credential"): (200, 200, 403, 403, 404),
    ("DELETE", "credentials/{id}/", "credential"): (409, 409, 403, 403, 404),  # a route uses it
    # routes
    ("GET", "routes/", ""): (200, 200, 200, 200, 200),
    ("POST", "routes/", ""): (201, 201, 403, 403, 400),
    ("GET", "routes/{id}/", "route"): (200, 200, 200, 200, 404),
    ("PUT", "routes/{id}/", "route"): (200, 200, 403, 403, 404),
    ("PATCH", "routes/{id}/", "route"): (200, 200, 403, 403, 404),
    ("DELETE", "routes/{id}/", "route"): (204, 204, 403, 403, 404),
    # route groups (model access groups): like routes
    ("GET", "route-groups/", ""): (200, 200, 200, 200, 200),
    ("POST", "route-groups/", ""): (201, 201, 403, 403, 400),
    ("GET", "route-groups/{id}/", "route_group"): (200, 200, 200, 200, 404),
    ("PUT", "route-groups/{id}/", "route_group"): (200, 200, 403, 403, 404),
    ("PATCH", "route-groups/{id}/", "route_group"): (200, 200, 403, 403, 404),
    ("DELETE", "route-groups/{id}/", "route_group"): (204, 204, 403, 403, 404),
    # keys: developers make and revoke their own; auditors read them all; never deleted
    ("GET", "keys/", ""): (200, 200, 200, 200, 200),
    ("POST", "keys/", ""): (201, 201, 201, 403, 400),
    ("GET", "keys/{id}/", "key"): (200, 200, 404, 200, 404),
    ("GET", "keys/{id}/", "own_key"): (200, 200, 200, 200, 404),
    ("PUT", "keys/{id}/", "key"): (200, 200, 404, 403, 404),
    ("PUT", "keys/{id}/", "own_key"): (200, 200, 200, 403, 404),
    ("PATCH", "keys/{id}/", "key"): (200, 200, 404, 403, 404),
    ("PATCH", "keys/{id}/", "own_key"): (200, 200, 200, 403, 404),
    ("POST", "keys/{id}/revoke/", "key"): (200, 200, 404, 403, 404),
    ("POST", "keys/{id}/revoke/", "own_key"): (200, 200, 200, 403, 404),
    # identity providers and guardrails: tenant admins write, auditors read
    ("GET", "identity-providers/", ""): (200, 200, 200, 200, 200),
    ("POST", "identity-providers/", ""): (201, 201, 403, 403, 400),
    ("GET", "identity-providers/{id}/", "idp"): (200, 200, 404, 200, 404),
    ("PUT", "identity-providers/{id}/", "idp"): (200, 200, 403, 403, 404),
    ("PATCH", "identity-providers/{id}/", "idp"): (200, 200, 403, 403, 404),
    ("DELETE", "identity-providers/{id}/", "idp"): (204, 204, 403, 403, 404),
    ("GET", "guardrails/", ""): (200, 200, 200, 200, 200),
    ("POST", "guardrails/", ""): (201, 201, 403, 403, 400),
    ("GET", "guardrails/{id}/", "guardrail"): (200, 200, 404, 200, 404),
    ("PUT", "guardrails/{id}/", "guardrail"): (200, 200, 403, 403, 404),
    ("PATCH", "guardrails/{id}/", "guardrail"): (200, 200, 403, 403, 404),
    ("DELETE", "guardrails/{id}/", "guardrail"): (204, 204, 403, 403, 404),
    # limits and projects: every member reads, tenant admins write
    ("GET", "limits/", ""): (200, 200, 200, 200, 200),
    ("POST", "limits/", ""): (201, 201, 403, 403, 400),
    ("GET", "limits/{id}/", "limit"): (200, 200, 200, 200, 404),
    ("PUT", "limits/{id}/", "limit"): (200, 200, 403, 403, 404),
    ("PATCH", "limits/{id}/", "limit"): (200, 200, 403, 403, 404),
    ("DELETE", "limits/{id}/", "limit"): (204, 204, 403, 403, 404),
    ("GET", "projects/", ""): (200, 200, 200, 200, 200),
    ("POST", "projects/", ""): (201, 201, 403, 403, 400),
    ("GET", "projects/{id}/", "project"): (200, 200, 200, 200, 404),
    ("PUT", "projects/{id}/", "project"): (200, 200, 403, 403, 404),
    ("PATCH", "projects/{id}/", "project"): (200, 200, 403, 403, 404),
    ("DELETE", "projects/{id}/", "project"): (204, 204, 403, 403, 404),
    # usage: developers see their own keys' usage; audit: tenant admins and auditors
    ("GET", "usage/", ""): (200, 200, 200, 200, 200),
    ("GET", "usage/{id}/", "usage"): (200, 200, 404, 200, 404),
    ("GET", "usage/{id}/", "own_usage"): (200, 200, 200, 200, 404),
    ("GET", "usage/export/", ""): (200, 200, 200, 200, 200),  # each gets what the list shows
    ("GET", "spend/", ""): (200, 200, 200, 200, 200),  # grouped from what the usage list shows
    ("GET", "audit/", ""): (200, 200, 200, 200, 200),
    ("GET", "audit/{id}/", "audit"): (200, 200, 404, 200, 404),
    ("GET", "audit/export/", ""): (200, 200, 200, 200, 200),  # what others get is empty
    # snapshots and the fleet hold every tenant's data: platform admins only
    ("GET", "snapshots/", ""): (200, 200, 200, 200, 200),  # empty for the others
    ("GET", "snapshots/{version}/", "snapshot"): (200, 404, 404, 404, 404),
    ("POST", "snapshots/publish/", ""): (200, 403, 403, 403, 403),
    ("GET", "nodes/", ""): (200, 200, 200, 200, 200),  # empty for the others
    ("GET", "nodes/{node_id}/", "node"): (200, 404, 404, 404, 404),
    # staged rollouts change every tenant's traffic: platform admins run them, auditors read
    # them (the world's rollout is completed: nothing left to do, 409, once permitted)
    ("GET", "rollouts/", ""): (200, 200, 200, 200, 200),  # empty for the others
    ("POST", "rollouts/", ""): (201, 403, 403, 403, 403),
    ("GET", "rollouts/{id}/", "rollout"): (200, 404, 404, 200, 404),
    ("POST", "rollouts/{id}/advance/", "rollout"): (409, 403, 403, 403, 403),
    ("POST", "rollouts/{id}/pause/", "rollout"): (409, 403, 403, 403, 403),
    ("POST", "rollouts/{id}/resume/", "rollout"): (409, 403, 403, 403, 403),
    ("POST", "rollouts/{id}/abort/", "rollout"): (409, 403, 403, 403, 403),
    # who holds which role: tenant admins (developers and auditors do not even see members)
    ("GET", "memberships/", ""): (200, 200, 200, 200, 200),
    ("POST", "memberships/", ""): (201, 201, 403, 403, 400),
    ("GET", "memberships/{id}/", "membership"): (200, 200, 404, 404, 404),
    ("PUT", "memberships/{id}/", "membership"): (200, 200, 403, 403, 404),
    ("PATCH", "memberships/{id}/", "membership"): (200, 200, 403, 403, 404),
    ("DELETE", "memberships/{id}/", "membership"): (204, 204, 403, 403, 404),
    ("GET", "sso-groups/", ""): (200, 200, 200, 200, 200),
    ("POST", "sso-groups/", ""): (201, 201, 403, 403, 400),
    ("GET", "sso-groups/{id}/", "sso_group"): (200, 200, 404, 404, 404),
    ("PUT", "sso-groups/{id}/", "sso_group"): (200, 200, 403, 403, 404),
    ("PATCH", "sso-groups/{id}/", "sso_group"): (200, 200, 403, 403, 404),
    ("DELETE", "sso-groups/{id}/", "sso_group"): (204, 204, 403, 403, 404),
    # configuration as code: the whole of it for platform admins, a tenant's for its admins
    ("GET", "config/export/", ""): (200, 200, 403, 403, 404),
    ("POST", "config/import/", ""): (200, 200, 403, 403, 404),
    ("POST", "config/import-litellm/", ""): (200, 200, 403, 403, 404),
}

# Writes that publish only when something changed (the world is already published), and
# writes of what the snapshot does not hold (who holds which role).
PUBLISHES_ONLY_CHANGES = {("POST", "snapshots/publish/", "")}
NOT_IN_THE_SNAPSHOT = ("memberships/", "sso-groups/", "rollouts/")

Body = Callable[[dict[str, Any]], dict[str, Any]]


def _target(r: dict[str, Any]) -> dict[str, Any]:
    return {"model": str(r["model"].id), "credential": str(r["credential"].id)}


def _idp(r: dict[str, Any], issuer: str) -> dict[str, Any]:
    return {
        "tenant": str(r["tenant"].id),
        "name": "corp",
        "issuer": issuer,
        "audience": "asc",
        "jwks": JWKS,
        "routes": [str(r["route"].id)],
    }


# Request bodies by (method, path); ``r`` is the world's rows of tenant A.
BODIES: dict[tuple[str, str], Body] = {
    ("POST", "tenants/"): lambda r: {"slug": "new-tenant", "name": "New"},
    ("PUT", "tenants/{id}/"): lambda r: {"slug": "tenant-a", "name": "Renamed"},
    ("PATCH", "tenants/{id}/"): lambda r: {"name": "Renamed"},
    ("POST", "providers/"): lambda r: {"name": "new-provider", "kind": "mock"},
    ("PUT", "providers/{id}/"): lambda r: {"name": "mock", "kind": "mock", "enabled": False},
    ("PATCH", "providers/{id}/"): lambda r: {"enabled": False},
    ("POST", "models/"): lambda r: {"provider": str(r["provider"].id), "provider_model": "m-2"},
    ("PUT", "models/{id}/"): lambda r: {
        "provider": str(r["provider"].id),
        "provider_model": "mock-1",
        "region": "us",
    },
    ("PATCH", "models/{id}/"): lambda r: {"region": "us"},
    ("POST", "credentials/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "provider": str(r["provider"].id),
        "name": "new",
        "secret": "sk-0123456789",
    },
    ("PUT", "credentials/{id}/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "provider": str(r["provider"].id),
        "name": "renamed",
        "secret": "sk-new-secret-000000",
    },
    ("PATCH", "credentials/{id}/"): lambda r: {"name": "renamed"},
    ("POST", "routes/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "name": "new-route",
        "targets": [_target(r)],
    },
    ("PUT", "routes/{id}/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "name": "renamed",
        "targets": [_target(r)],
    },
    ("PATCH", "routes/{id}/"): lambda r: {"name": "renamed"},
    ("POST", "route-groups/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "name": "new-group",
        "routes": [str(r["route"].id)],
    },
    ("PUT", "route-groups/{id}/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "name": "renamed",
        "routes": [],
        "projects": [str(r["project"].id)],
    },
    ("PATCH", "route-groups/{id}/"): lambda r: {"name": "renamed"},
    ("POST", "keys/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "name": "new-key",
        "routes": [str(r["route"].id)],
    },
    ("PUT", "keys/{id}/"): lambda r: {"name": "renamed", "routes": [str(r["route"].id)]},
    ("PATCH", "keys/{id}/"): lambda r: {"name": "renamed"},
    ("POST", "identity-providers/"): lambda r: _idp(r, "https://new.example"),
    ("PUT", "identity-providers/{id}/"): lambda r: _idp(r, "https://idp.a.example"),
    ("PATCH", "identity-providers/{id}/"): lambda r: {"audience": "other"},
    ("POST", "guardrails/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "route": str(r["route"].id),
        "name": "route-policy",
    },
    ("PUT", "guardrails/{id}/"): lambda r: {"tenant": str(r["tenant"].id), "name": "renamed"},
    ("PATCH", "guardrails/{id}/"): lambda r: {"default_action": "block"},
    ("POST", "limits/"): lambda r: {"tenant": str(r["tenant"].id), "amount": "5"},
    ("PUT", "limits/{id}/"): lambda r: {"tenant": str(r["tenant"].id), "amount": "7"},
    ("PATCH", "limits/{id}/"): lambda r: {"amount": "9"},
    ("POST", "projects/"): lambda r: {"tenant": str(r["tenant"].id), "name": "new"},
    ("PUT", "projects/{id}/"): lambda r: {"tenant": str(r["tenant"].id), "name": "renamed"},
    ("PATCH", "projects/{id}/"): lambda r: {"name": "renamed"},
    ("POST", "memberships/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "user": "newcomer",
        "role": "developer",
    },
    ("PUT", "memberships/{id}/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "user": "developer",
        "role": "auditor",
    },
    ("PATCH", "memberships/{id}/"): lambda r: {"role": "auditor"},
    ("POST", "sso-groups/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "group": "new-group",
        "role": "auditor",
    },
    ("PUT", "sso-groups/{id}/"): lambda r: {
        "tenant": str(r["tenant"].id),
        "group": "renamed",
        "role": "developer",
    },
    ("PATCH", "sso-groups/{id}/"): lambda r: {"role": "tenant_admin"},
    ("POST", "rollouts/"): lambda r: {"steps": [5, 25, 100], "soak_s": 60},
    ("POST", "rollouts/{id}/advance/"): lambda r: {},
    ("POST", "rollouts/{id}/pause/"): lambda r: {"reason": "looking at the canaries"},
    ("POST", "rollouts/{id}/resume/"): lambda r: {},
    ("POST", "rollouts/{id}/abort/"): lambda r: {"reason": "not today"},
    ("POST", "config/import/"): lambda r: {
        "document": export_yaml("tenant-a").replace("name: chat\n", "name: chat-renamed\n"),
        "tenant": "tenant-a",
    },
    ("POST", "config/import-litellm/"): lambda r: {
        "tenant": "tenant-a",
        "config": {
            "model_list": [
                {
                    "model_name": "imported",
                    "litellm_params": {
                        "model": "openai/gpt-4o",
                        "api_base": UPSTREAM,
                        "api_key": "os.environ/UPSTREAM_KEY",
                    },
                }
            ]
        },
        "secrets": {"UPSTREAM_KEY": "sk-upstream-0123456789"},
    },
}
QUERIES: dict[tuple[str, str], Callable[[dict[str, Any]], str]] = {
    ("GET", "audit/export/"): lambda r: f"?tenant={r['tenant'].id}",
    ("GET", "config/export/"): lambda r: "?tenant=tenant-a",
    ("GET", "spend/"): lambda r: "?group_by=key",
}


def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (method.upper(), path.removeprefix("/api/v1/"))
        for path, operations in schema["paths"].items()
        for method in operations
    }


def test_every_api_operation_has_a_row() -> None:
    in_matrix = {(method, path) for method, path, _ in API}
    missing = schema_operations() - in_matrix
    assert not missing, f"API operations without a row in the permission matrix: {missing}"
    stale = in_matrix - schema_operations()
    assert not stale, f"rows for operations the API no longer has: {stale}"
    writes = {(m, p) for m, p, _ in API if m in ("POST", "PUT", "PATCH")}
    assert writes - set(BODIES) <= {("POST", "snapshots/publish/"), ("POST", "keys/{id}/revoke/")}


def key_of(row: Any) -> str:
    return str(row.pk)


def call_api(world: World, role: str, method: str, path: str, subject: str) -> Any:
    client = APIClient()
    client.force_authenticate(world.users[role])
    url = "/api/v1/" + path
    if subject:
        url = re.sub(r"\{[^}]+\}", key_of(world.rows[subject]), url)
    url += QUERIES.get((method, path), lambda r: "")(world.rows)
    body = BODIES.get((method, path), lambda r: None)(world.rows)
    return client.generic(method, url, data=_json(body), content_type="application/json")


def _json(body: Any) -> str:
    import json

    return "" if body is None else json.dumps(body)


def op_id(op: tuple[str, str, str]) -> str:
    method, path, subject = op
    return f"{method} {path}" + (f" [{subject}]" if subject else "")


def publishes_asked() -> int:
    """How many publishes the open transaction has asked for (``request_publish`` gathers them
    into one callback per transaction, run on commit)."""
    return sum(
        len(getattr(callback, "asc_publish_reasons", ()))
        for _, callback, _ in transaction.get_connection().run_on_commit
    )


@pytest.mark.parametrize("op", list(API), ids=op_id)
def test_api(op: tuple[str, str, str], world: World) -> None:
    method, path, subject = op
    failures = []
    for role, expected in zip(ROLES, API[op], strict=True):
        with rolled_back():
            before, asked = state(), publishes_asked()
            response = call_api(world, role, method, path, subject)
            got = response.status_code
            published = publishes_asked() > asked
            if got != expected:
                failures.append(
                    f"{role}: expected {expected}, got {got}: {response.content[:300]!r}"
                )
            elif expected >= 400:
                if changed := compare(before, state()):
                    failures.append(f"{role}: the denial ({got}) changed {changed}")
                if published:
                    failures.append(f"{role}: the denial ({got}) asked for a publish")
                assert set(response.json()) == {"error"}, "one error shape"
            elif (
                method != "GET"
                and not published
                and op not in PUBLISHES_ONLY_CHANGES
                and not path.startswith(NOT_IN_THE_SNAPSHOT)
            ):
                failures.append(f"{role}: the write ({got}) published no snapshot")
    assert not failures, "\n".join([op_id(op), *failures])


# List endpoints show exactly the rows their detail endpoint lets a role retrieve.
ID_FIELD = {
    "snapshots": "version",
    "nodes": "node_id",
    "usage": "request_id",
    "audit": "request_id",
}


def _list_checks() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    checks: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for (method, path, subject), statuses in API.items():
        if method == "GET" and subject and path.count("/") == 2:
            checks.setdefault(path.split("/")[0], []).append((subject, statuses))
    return checks


LIST_CHECKS = _list_checks()


def _ident(endpoint: str, row: Any) -> str:
    field = ID_FIELD.get(endpoint, "pk")
    return str(getattr(row, field))


@pytest.mark.parametrize("endpoint", sorted(LIST_CHECKS))
def test_lists_hold_exactly_the_rows_a_role_may_retrieve(world: World, endpoint: str) -> None:
    tenant_a = str(world.rows["tenant"].id)
    for role_index, role in enumerate(ROLES):
        client = APIClient()
        client.force_authenticate(world.users[role])
        items = client.get(f"/api/v1/{endpoint}/?limit=1000").json()["results"]
        listed = {str(item.get(ID_FIELD.get(endpoint, "id"))) for item in items}
        for subject, statuses in LIST_CHECKS[endpoint]:
            visible = statuses[role_index] == 200
            ident = _ident(endpoint, world.rows[subject])
            assert (ident in listed) == visible, (endpoint, role, subject)
        if role == "outsider":
            assert all(str(item.get("tenant", "")) != tenant_a for item in items), endpoint


# What each role's export of tenant A holds: usage of both keys of A (the developer: their
# own key's), and A's one audit record (not for developers).
EXPORTS = {
    "usage": {"platform": 2, "tenant_admin": 2, "developer": 1, "auditor": 2, "outsider": 0},
    "audit": {"platform": 1, "tenant_admin": 1, "developer": 0, "auditor": 1, "outsider": 0},
}


def _export_records(body: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import json

    *lines, last = body.splitlines()
    return [json.loads(line) for line in lines], json.loads(last)["trailer"]


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_an_export_holds_only_records_the_role_may_read(world: World, kind: str) -> None:
    tenant_a = str(world.rows["tenant"].id)
    for role, count in EXPORTS[kind].items():
        client = APIClient()
        client.force_authenticate(world.users[role])
        listed = client.get(f"/api/v1/{kind}/?limit=1000").json()["results"]
        for query in (f"?tenant={tenant_a}", ""):
            response = client.get(f"/api/v1/{kind}/export/{query}")
            body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
            records, trailer = _export_records(body)
            assert len(records) == trailer["count"] == count, (kind, role, query)
            # The export holds exactly what the role's list holds (all of tenant A here).
            assert {r["request_id"] for r in records} == {r["request_id"] for r in listed}


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_an_admin_export_holds_only_records_the_role_may_read(world: World, kind: str) -> None:
    label = {"usage": "asc_usage/usagerecord", "audit": "asc_audit/auditrecord"}[kind]
    for role, count in EXPORTS[kind].items():
        if kind == "audit" and role == "developer":
            continue  # no audit pages at all (403: the matrix above)
        client = Client()
        client.force_login(world.users[role])
        response = client.get(f"/admin/{label}/export/ndjson/")
        assert response.status_code == 200, (kind, role)
        body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
        records, trailer = _export_records(body)
        assert len(records) == trailer["count"] == count, (kind, role)


def test_a_tenant_admin_cannot_move_a_row_to_another_tenant(world: World) -> None:
    b = Tenant.objects.get(slug="tenant-b")
    client = APIClient()
    client.force_authenticate(world.users["tenant_admin"])
    for endpoint in ("routes", "credentials", "limits", "projects", "guardrails"):
        before = state()
        obj = world.rows[
            {"routes": "route", "credentials": "credential"}.get(endpoint, endpoint[:-1])
        ]
        response = client.patch(
            f"/api/v1/{endpoint}/{obj.pk}/", {"tenant": str(b.id)}, format="json"
        )
        assert response.status_code == 400, (
            endpoint,
            response.content,
        )  # B does not exist for them
        assert compare(before, state()) == [], endpoint


def test_a_foreign_credential_id_reads_as_missing(world: World) -> None:
    b_cred = ProviderCredential.objects.get(tenant__slug="tenant-b")
    body = {
        "tenant": str(world.rows["tenant"].id),
        "name": "sneaky",
        "targets": [{"model": str(world.rows["model"].id), "credential": str(b_cred.id)}],
    }
    client = APIClient()
    client.force_authenticate(world.users["tenant_admin"])
    response = client.post("/api/v1/routes/", body, format="json")
    assert response.status_code == 400
    assert "does not exist" in str(response.json()["error"]["details"])
    assert "tenant-b" not in response.content.decode()


# --- the admin ----------------------------------------------------------------------------
# (model, page) -> expected status per role. Pages: the changelist, the subject's change page,
# the add page and a confirmed delete of the subject (POST). A page of a row the user may not
# see redirects to the admin index (302), as Django's admin does for a row that does not exist.
ADMIN_SUBJECTS = {
    "auth.group": "group",
    "auth.user": "developer_user",
    "authtoken.tokenproxy": "token",
    "asc_tenancy.tenant": "tenant",
    "asc_catalog.provider": "provider",
    "asc_catalog.providercredential": "credential",
    "asc_catalog.model": "model",
    "asc_catalog.route": "route",
    "asc_catalog.routegroup": "route_group",
    "asc_keys.virtualkey": "key",
    "asc_keys.identityprovider": "idp",
    "asc_fleet.policysnapshot": "snapshot",
    "asc_fleet.dataplanenode": "node",
    "asc_usage.usagerecord": "usage",
    "asc_audit.auditrecord": "audit",
    "asc_guardrails.guardrailpolicy": "guardrail",
    "asc_limits.limit": "limit",
    "asc_rollouts.rollout": "rollout",
}
NO_ROLE = (200, 403, 403, 403, 403)  # Django's own models: platform admins only
ADMIN: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("auth.group", "changelist"): NO_ROLE,
    ("auth.group", "change"): NO_ROLE,
    ("auth.group", "add"): NO_ROLE,
    ("auth.group", "delete"): (302, 403, 403, 403, 403),
    ("auth.user", "changelist"): NO_ROLE,
    ("auth.user", "change"): NO_ROLE,
    ("auth.user", "add"): NO_ROLE,
    ("auth.user", "delete"): (302, 403, 403, 403, 403),
    ("authtoken.tokenproxy", "changelist"): NO_ROLE,
    ("authtoken.tokenproxy", "change"): NO_ROLE,
    ("authtoken.tokenproxy", "add"): NO_ROLE,
    ("authtoken.tokenproxy", "delete"): (302, 403, 403, 403, 403),
    ("asc_tenancy.tenant", "changelist"): (200, 200, 200, 200, 200),
    ("asc_tenancy.tenant", "change"): (200, 200, 200, 200, 302),
    ("asc_tenancy.tenant", "add"): (200, 403, 403, 403, 403),
    ("asc_tenancy.tenant", "delete"): (302, 403, 403, 403, 403),
    ("asc_tenancy.tenant", "timeline"): (200, 200, 200, 200, 404),
    ("asc_catalog.provider", "changelist"): (200, 200, 200, 200, 200),
    ("asc_catalog.provider", "change"): (200, 200, 200, 200, 200),
    ("asc_catalog.provider", "add"): (200, 403, 403, 403, 403),
    ("asc_catalog.provider", "delete"): (200, 403, 403, 403, 403),  # protected: "cannot delete"
    ("asc_catalog.providercredential", "changelist"): (200, 200, 403, 403, 200),
    ("asc_catalog.providercredential", "change"): (200, 200, 403, 403, 302),
    ("asc_catalog.providercredential", "add"): (200, 200, 403, 403, 200),
    ("asc_catalog.providercredential", "delete"): (200, 200, 403, 403, 302),  # protected
    ("asc_catalog.model", "changelist"): (200, 200, 200, 200, 200),
    ("asc_catalog.model", "change"): (200, 200, 200, 200, 200),
    ("asc_catalog.model", "add"): (200, 403, 403, 403, 403),
    ("asc_catalog.model", "delete"): (200, 403, 403, 403, 403),  # protected
    ("asc_catalog.route", "changelist"): (200, 200, 200, 200, 200),
    ("asc_catalog.route", "change"): (200, 200, 200, 200, 302),
    ("asc_catalog.route", "add"): (200, 200, 403, 403, 200),
    ("asc_catalog.route", "delete"): (302, 302, 403, 403, 302),
    ("asc_catalog.routegroup", "changelist"): (200, 200, 200, 200, 200),
    ("asc_catalog.routegroup", "change"): (200, 200, 200, 200, 302),
    ("asc_catalog.routegroup", "add"): (200, 200, 403, 403, 200),
    ("asc_catalog.routegroup", "delete"): (302, 302, 403, 403, 302),
    ("asc_keys.virtualkey", "changelist"): (200, 200, 200, 200, 200),
    ("asc_keys.virtualkey", "change"): (200, 200, 302, 200, 302),
    ("asc_keys.virtualkey", "add"): (200, 200, 200, 403, 200),
    ("asc_keys.virtualkey", "delete"): (403, 403, 403, 403, 403),  # revoked, never deleted
    ("asc_keys.identityprovider", "changelist"): (200, 200, 403, 200, 200),
    ("asc_keys.identityprovider", "change"): (200, 200, 403, 200, 302),
    ("asc_keys.identityprovider", "add"): (200, 200, 403, 403, 200),
    ("asc_keys.identityprovider", "delete"): (302, 302, 403, 403, 302),
    ("asc_fleet.policysnapshot", "changelist"): (200, 403, 403, 403, 403),
    ("asc_fleet.policysnapshot", "change"): (200, 403, 403, 403, 403),
    ("asc_fleet.policysnapshot", "add"): (403, 403, 403, 403, 403),
    ("asc_fleet.policysnapshot", "delete"): (403, 403, 403, 403, 403),
    ("asc_fleet.policysnapshot", "diff"): (200, 403, 403, 403, 403),
    ("asc_fleet.policysnapshot", "rollback"): (302, 403, 403, 403, 403),
    ("asc_fleet.dataplanenode", "changelist"): (200, 403, 403, 403, 403),
    ("asc_fleet.dataplanenode", "change"): (200, 403, 403, 403, 403),
    ("asc_fleet.dataplanenode", "add"): (403, 403, 403, 403, 403),
    ("asc_fleet.dataplanenode", "delete"): (403, 403, 403, 403, 403),
    ("asc_usage.usagerecord", "changelist"): (200, 200, 200, 200, 200),
    ("asc_usage.usagerecord", "change"): (200, 200, 302, 200, 302),
    ("asc_usage.usagerecord", "add"): (403, 403, 403, 403, 403),
    ("asc_usage.usagerecord", "delete"): (403, 403, 403, 403, 403),
    ("asc_usage.usagerecord", "export_csv"): (200, 200, 200, 200, 200),
    ("asc_usage.usagerecord", "export_ndjson"): (200, 200, 200, 200, 200),
    ("asc_audit.auditrecord", "changelist"): (200, 200, 403, 200, 200),
    ("asc_audit.auditrecord", "change"): (200, 200, 403, 200, 302),
    ("asc_audit.auditrecord", "add"): (403, 403, 403, 403, 403),
    ("asc_audit.auditrecord", "delete"): (403, 403, 403, 403, 403),
    ("asc_audit.auditrecord", "export_csv"): (200, 200, 403, 200, 200),
    ("asc_audit.auditrecord", "export_ndjson"): (200, 200, 403, 200, 200),
    ("asc_guardrails.guardrailpolicy", "changelist"): (200, 200, 403, 200, 200),
    ("asc_guardrails.guardrailpolicy", "change"): (200, 200, 403, 200, 302),
    ("asc_guardrails.guardrailpolicy", "add"): (200, 200, 403, 403, 200),
    ("asc_guardrails.guardrailpolicy", "delete"): (302, 302, 403, 403, 302),
    ("asc_limits.limit", "changelist"): (200, 200, 200, 200, 200),
    ("asc_limits.limit", "change"): (200, 200, 200, 200, 302),
    ("asc_limits.limit", "add"): (200, 200, 403, 403, 200),
    ("asc_limits.limit", "delete"): (302, 302, 403, 403, 302),
    # rollouts: platform admins stage and steer them, auditors read them
    ("asc_rollouts.rollout", "changelist"): (200, 403, 403, 200, 403),
    ("asc_rollouts.rollout", "change"): (200, 403, 403, 200, 403),
    ("asc_rollouts.rollout", "add"): (403, 403, 403, 403, 403),
    ("asc_rollouts.rollout", "delete"): (403, 403, 403, 403, 403),
    ("asc_rollouts.rollout", "start"): (200, 403, 403, 403, 403),
}
STANDARD_PAGES = ("changelist", "change", "add", "delete")


def admin_subject(world: World, name: str) -> Any:
    from django.contrib.auth.models import Group
    from rest_framework.authtoken.models import Token, TokenProxy

    if name == "group":
        return Group.objects.get_or_create(name="operators")[0]
    if name == "developer_user":
        return world.users["developer"]
    if name == "token":
        return TokenProxy.objects.get(pk=Token.objects.create(user=world.users["developer"]).pk)
    return world.rows[name]


def admin_url(world: World, label: str, page: str) -> str:
    app_label, model = label.split(".")
    base = f"/admin/{app_label}/{model}/"
    if page == "changelist":
        return base
    if page in ("add", "start"):  # pages of the list, not of one row
        return base + f"{page}/"
    if page.startswith("export_"):  # the list's export buttons
        return base + f"export/{page.removeprefix('export_')}/"
    obj = admin_subject(world, ADMIN_SUBJECTS[label])
    pk = obj.pk
    return base + f"{pk}/" + {"change": "change/"}.get(page, f"{page}/")


def test_every_admin_model_has_its_rows() -> None:
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered == set(ADMIN_SUBJECTS), "admin models without a subject in the matrix"
    missing = {(m, p) for m in registered for p in STANDARD_PAGES} - set(ADMIN)
    assert not missing, f"admin pages without a row in the permission matrix: {missing}"


@pytest.mark.parametrize("page", list(ADMIN), ids=lambda p: f"{p[0]} {p[1]}")
def test_admin(page: tuple[str, str], world: World) -> None:
    label, kind = page
    failures = []
    for role, expected in zip(ROLES, ADMIN[page], strict=True):
        with rolled_back():
            url = admin_url(world, label, kind)
            client = Client()
            client.force_login(world.users[role])
            before = state()
            if kind in ("delete", "rollback"):
                response = client.post(url, {"post": "yes"})
            else:
                response = client.get(url)
            if response.status_code != expected:
                failures.append(f"{role}: expected {expected}, got {response.status_code}")
                continue
            # Done: a redirect to the list; refused: 403, a page, or "no such row" (the index).
            done = response.status_code == 302 and response["Location"] != "/admin/"
            if (
                kind in ("delete", "rollback")
                and not done
                and (changed := compare(before, state()))
            ):
                failures.append(f"{role}: the refused {kind} changed {changed}")
    assert not failures, "\n".join([f"{label} {kind}", *failures])
