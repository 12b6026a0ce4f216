"""Rollback restores everything a version held: change one kind of row, roll back, and the
exported configuration is the document the old version stored. Keys are the exception: a key
revoked since stays revoked, a key created since stays with only what still exists. Run on
PostgreSQL (DATABASE_URL), like CI."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from control_plane.catalog import services as catalog
from control_plane.catalog.models import Model, Provider, ProviderCredential, Route, RouteGroup
from control_plane.config.document import from_yaml, secret_env_name
from control_plane.config.selectors import current_document
from control_plane.config.services import import_document
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.rollback import RollbackRefused, rollback_to
from control_plane.fleet.services import publish_snapshot
from control_plane.guardrails import services as guardrails
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.keys import services as keys
from control_plane.keys.models import IdentityProvider, VirtualKey
from control_plane.limits import services as limits
from control_plane.limits.models import Limit, Scope
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Membership, Project, Tenant
from shared.crypto import hash_key

pytestmark = pytest.mark.django_db

SECRET = "sk-upstream-main-0123456789"
KEY = "sk-asc-rollback-test-key-0001"
DOCUMENT = f"""
providers:
- name: mock
  kind: mock
  options: {{latency_ms: 1}}
  models:
  - {{model: mock-1, region: eu, input_price: "1.5", output_price: "2"}}
  - {{model: mock-2, region: eu}}
tenants:
- slug: acme
  allowed_regions: [eu]
  projects:
  - name: search
    limits: [{{kind: budget, period: month, amount: "20"}}]
  credentials:
  - {{name: main, provider: mock}}
  routes:
  - name: chat
    targets: [{{credential: main, model: mock-1, region: eu, weight: 3}}]
    connect_timeout_ms: 1000
    total_timeout_ms: 30000
    max_retries: 2
    limits: [{{kind: tokens, period: minute, amount: "10000"}}]
    guardrail: {{name: strict, default_action: block, categories: [email]}}
  - name: other
    targets: [{{credential: main, model: mock-2, region: eu}}]
  route_groups:
  - {{name: everything, routes: [chat, other], projects: [search]}}
  keys:
  - hash: {hash_key(KEY)}
    name: app
    routes: [chat]
    route_groups: [everything]
    project: search
    max_parallel: 4
    max_tokens: 500
    limits: [{{kind: requests, period: minute, amount: "60"}}]
  identity_providers:
  - issuer: https://idp.acme.example
    name: corp
    audience: asc
    jwks: {{keys: [{{kty: RSA, kid: k1, n: sXch, e: AQAB}}]}}
    routes: [other]
    role_routes: {{ml: [chat]}}
  limits:
  - {{kind: budget, period: month, amount: "100", alert_thresholds: [0.8]}}
  guardrail: {{name: pii, categories: [email, phone], default_action: block}}
"""


@pytest.fixture
def admin() -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw-root-12345")


@pytest.fixture
def v1(admin: User) -> PolicySnapshot:
    import_document(from_yaml(DOCUMENT), secrets={secret_env_name("acme", "main"): SECRET})
    snapshot = publish_snapshot("v1").snapshot
    assert snapshot.document, "the snapshot keeps the document that produced it"
    return snapshot


def acme() -> Tenant:
    return Tenant.objects.get(slug="acme")


def route(name: str = "chat") -> Route:
    return Route.objects.get(tenant__slug="acme", name=name)


def key() -> VirtualKey:
    return VirtualKey.objects.get(key_hash=hash_key(KEY))


# --- one change per kind, through the services ------------------------------------------


def change_provider() -> None:
    mock = Provider.objects.get(name="mock")
    mock.options, mock.base_url = {"latency_ms": 900}, "http://elsewhere.example:8000/v1"
    catalog.put_provider(mock, actor=None)
    catalog.put_provider(Provider(name="added", kind="openai"), actor=None)


def change_model() -> None:
    model = Model.objects.get(provider_model="mock-1")
    model.input_price = Decimal("1500")
    catalog.put_model(model, actor=None)
    catalog.put_model(
        Model(provider=Provider.objects.get(name="mock"), provider_model="mock-3", region="us"),
        actor=None,
    )


def change_tenant() -> None:
    tenant = acme()
    tenant.allowed_regions, tenant.active = ["us"], False
    tenancy.put_tenant(tenant, actor=None)


def change_project() -> None:
    tenancy.delete_project(Project.objects.get(name="search"), actor=None)
    tenancy.put_project(Project(tenant=acme(), name="added"), actor=None)


def change_credential() -> None:
    credential = ProviderCredential.objects.get(name="main")
    catalog.put_credential(credential, actor=None, secret="sk-rotated-9999999999")
    catalog.put_credential(
        ProviderCredential(tenant=acme(), name="added", provider=Provider.objects.get(name="mock")),
        actor=None,
        secret="sk-added-00000000000",
    )


def change_route() -> None:
    chat = route()
    chat.connect_timeout_ms, chat.max_retries, chat.latency_aware = 5, 0, True
    other = route("other")
    targets = [catalog.TargetSpec(other.targets.get().model, other.targets.get().credential, 0, 1)]
    catalog.put_route(chat, actor=None, targets=targets)
    catalog.delete_route(other, actor=None)
    catalog.put_route(Route(tenant=acme(), name="added"), actor=None, targets=targets)


def change_route_group() -> None:
    # Taking a route out of a group revokes it from the group's keys; after the rollback it
    # must come back through the group again, not as a direct grant of the key.
    group = RouteGroup.objects.get(name="everything")
    catalog.put_route_group(group, actor=None, routes=[route()], projects=[])
    catalog.put_route_group(RouteGroup(tenant=acme(), name="added"), actor=None, routes=[route()])


def change_key() -> None:
    k = key()
    keys.update_key(
        k,
        name="renamed",
        routes=[route("other")],
        expires_at=None,
        actor=None,
        project=None,
        route_groups=[],
        max_parallel=1,
        max_body_bytes=10,
        max_tokens=1,
        asserts_end_user=True,
    )


def change_identity_provider() -> None:
    idp = IdentityProvider.objects.get(name="corp")
    idp.audience, idp.role_routes = "else", {}
    keys.put_identity_provider(idp, actor=None, routes=[route()])
    added = IdentityProvider(
        tenant=acme(), issuer="https://added.example", name="added", audience="x", jwks=idp.jwks
    )
    keys.put_identity_provider(added, actor=None, routes=[])


def change_limit() -> None:
    budget = Limit.objects.get(scope=Scope.TENANT)
    budget.amount = Decimal("0.0001")  # a thousand times too low, and more
    limits.put_limit(budget, actor=None)
    limits.delete_limit(Limit.objects.get(scope=Scope.ROUTE), actor=None)
    limits.put_limit(
        Limit(tenant=acme(), scope=Scope.KEY, key=key(), kind="tokens", amount=5), actor=None
    )


def change_guardrail() -> None:
    pii = GuardrailPolicy.objects.get(route__isnull=True)
    pii.enabled = False  # someone switched PII blocking off
    guardrails.put_guardrail_policy(pii, actor=None)
    guardrails.delete_guardrail_policy(GuardrailPolicy.objects.get(route=route()), actor=None)


CHANGES: dict[str, Callable[[], None]] = {
    "provider": change_provider,
    "model": change_model,
    "tenant": change_tenant,
    "project": change_project,
    "credential": change_credential,
    "route": change_route,
    "route_group": change_route_group,
    "key": change_key,
    "identity_provider": change_identity_provider,
    "limit": change_limit,
    "guardrail": change_guardrail,
}


@pytest.mark.parametrize("kind", list(CHANGES))
def test_rollback_restores_every_kind(kind: str, v1: PolicySnapshot, admin: User) -> None:
    old = from_yaml(v1.document)
    CHANGES[kind]()
    assert current_document() != old, "the change changed the configuration"
    rollback_to(v1.version, actor=admin)
    assert current_document() == old
    assert catalog.open_credential(ProviderCredential.objects.get(name="main")) == SECRET


def test_every_change_at_once_rolls_back_too(v1: PolicySnapshot, admin: User) -> None:
    for kind, change in CHANGES.items():
        if kind != "route":
            change()
    change_route()  # last: it deletes a route other changes use
    rollback_to(v1.version, actor=admin)
    assert current_document() == from_yaml(v1.document)


def test_group_grants_stay_group_grants(v1: PolicySnapshot, admin: User) -> None:
    change_route_group()
    rollback_to(v1.version, actor=admin)
    assert set(key().routes.values_list("name", flat=True)) == {"chat"}, "no direct grant added"
    group = RouteGroup.objects.get(name="everything")
    catalog.put_route_group(group, actor=None, routes=[route()], projects=[])
    assert "other" not in {r.name for g in key().route_groups.all() for r in g.routes.all()}


def test_a_key_revoked_since_is_never_brought_back(v1: PolicySnapshot, admin: User) -> None:
    keys.revoke_keys([key()], actor=None)
    rollback_to(v1.version, actor=admin)
    assert key().revoked_at is not None
    assert current_document()["tenants"][0]["keys"] == []


def test_a_key_created_since_stays_with_only_what_still_exists(
    v1: PolicySnapshot, admin: User
) -> None:
    change_route()  # adds route "added", deletes "other"
    tenancy.put_project(Project(tenant=acme(), name="new-project"), actor=None)
    new = keys.import_key(
        acme(),
        hash_key("sk-asc-created-since-000001"),
        "",
        "since",
        [route(), route("added")],
        None,
        None,
        actor=None,
        project=Project.objects.get(name="new-project"),
        route_groups=[RouteGroup.objects.get(name="everything")],
        max_tokens=7,
    )
    rollback_to(v1.version, actor=admin)
    new.refresh_from_db()
    assert new.revoked_at is None, "a key created since stays"
    assert set(new.routes.values_list("name", flat=True)) == {"chat"}
    assert set(new.route_groups.values_list("name", flat=True)) == {"everything"}
    assert new.project is None
    assert new.max_tokens == 7
    tenant_doc = current_document()["tenants"][0]
    assert {k["name"] for k in tenant_doc["keys"]} == {"app", "since"}


def test_a_tenant_created_since_is_disabled_and_access_is_not_rolled_back(
    v1: PolicySnapshot, admin: User
) -> None:
    tenancy.put_tenant(Tenant(slug="later", name="later"), actor=None)
    alice = User.objects.create_user("alice", password="pw-alice-12345")
    tenancy.put_membership(Membership(user=alice, tenant=acme(), role="developer"), actor=None)
    rollback_to(v1.version, actor=admin)
    assert not Tenant.objects.get(slug="later").active
    assert Membership.objects.filter(user=alice, tenant=acme()).exists()


def test_a_version_without_a_document_is_refused(v1: PolicySnapshot, admin: User) -> None:
    PolicySnapshot.objects.filter(version=v1.version).update(document="")
    change_guardrail()
    with pytest.raises(RollbackRefused, match="cannot be restored"), transaction.atomic():
        rollback_to(v1.version, actor=admin)
    assert not GuardrailPolicy.objects.get(route__isnull=True).enabled, "nothing written"


def test_only_platform_admins_may_roll_back(v1: PolicySnapshot) -> None:
    staff = User.objects.create_user("staff", password="pw-staff-12345", is_staff=True)
    tenancy.put_membership(Membership(user=staff, tenant=acme(), role="tenant_admin"), actor=None)
    change_provider()
    with pytest.raises(RollbackRefused, match="your role may not"):
        rollback_to(v1.version, actor=staff)
