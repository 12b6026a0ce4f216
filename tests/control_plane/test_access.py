"""The access rules: pure functions of a user's grants (no database: pytest-django refuses any
query in the tests without its mark), and the one membership query a request costs, however
many models and rows it checks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q
from django.test import Client
from django.test.utils import CaptureQueriesContext

from control_plane.core.access import (
    ADMIN,
    AUDITOR,
    CHANGE,
    DELETE,
    DEV,
    NOBODY,
    RULES,
    VIEW,
    Grants,
    Reach,
    holds_role,
    may_create,
    reach,
    row_filter,
)
from control_plane.keys.models import VirtualKey
from control_plane.tenancy.models import Membership, Tenant
from tests.control_plane import factories

T1, T2, T3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
ACTIONS = [VIEW, CHANGE, DELETE]
NOTHING = Q(pk__in=[])


# --- the rules, without a database ----------------------------------------------------------


def test_a_platform_admin_reaches_every_row_and_creates_anywhere() -> None:
    admin = Grants(user_id=1, platform_admin=True)
    for model in [*RULES, "someday-a-new-model"]:
        for action in ACTIONS:
            assert reach(admin, model, action) == Reach(everything=True)
            assert row_filter(reach(admin, model, action), "tenant", "", 1) is None
        assert may_create(admin, model, T1)
        assert may_create(admin, model, None)


def test_nobody_holds_nothing() -> None:
    for model in RULES:
        for action in ACTIONS:
            assert reach(NOBODY, model, action) == Reach()
            assert not holds_role(NOBODY, model, action)
            assert row_filter(reach(NOBODY, model, action), "tenant", "", None) == NOTHING
        assert not may_create(NOBODY, model, T1)


@pytest.mark.parametrize("role", [ADMIN, DEV, AUDITOR])
def test_each_role_is_what_the_table_says_in_its_tenant_only(role: str) -> None:
    grants = Grants(user_id=7, roles={T1: role})
    for model, rule in RULES.items():
        for action in ACTIONS:
            allowed = role in rule.roles(action)
            got = reach(grants, model, action)
            assert holds_role(grants, model, action) is allowed, (model, action)
            assert got.tenants | got.own_tenants == ({T1} if allowed else set()), (model, action)
            assert bool(got.own_tenants) is (allowed and role in rule.own_only), (model, action)
            assert not got.everything
        assert may_create(grants, model, T1) is (role in rule.change), model
        assert not may_create(grants, model, T2), model  # no role there
        assert not may_create(grants, model, None), model  # platform-wide rows


def test_roles_in_several_tenants_each_count_where_they_are_held() -> None:
    grants = Grants(user_id=7, roles={T1: ADMIN, T2: DEV, T3: AUDITOR})
    assert reach(grants, "route", CHANGE) == Reach(tenants=frozenset({T1}))
    assert reach(grants, "route", VIEW) == Reach(tenants=frozenset({T1, T2, T3}))
    assert reach(grants, "virtualkey", CHANGE) == Reach(
        tenants=frozenset({T1}), own_tenants=frozenset({T2})
    )
    assert reach(grants, "auditrecord", VIEW) == Reach(tenants=frozenset({T1, T3}))
    assert reach(grants, "tenant", DELETE) == Reach()  # only the platform deletes tenants
    assert reach(grants, "policysnapshot", VIEW) == Reach()  # every tenant's data
    assert [may_create(grants, "virtualkey", t) for t in (T1, T2, T3)] == [True, True, False]


def test_the_filter_follows_the_tenant_path_and_the_owner() -> None:
    developer = Grants(user_id=7, roles={T1: DEV})
    own_keys = row_filter(reach(developer, "virtualkey", VIEW), "tenant", "created_by", 7)
    assert own_keys == NOTHING | Q(tenant__in=[T1], created_by=7)
    admin = Grants(user_id=8, roles={T1: ADMIN})
    usage = row_filter(reach(admin, "usagerecord", VIEW), "tenant", "key__created_by", 8)
    assert usage == NOTHING | Q(tenant__in=[T1])
    assert row_filter(reach(admin, "tenant", VIEW), "", "", 8) == NOTHING | Q(pk__in=[T1])
    # Platform-wide rows (providers): readable with any allowed role anywhere, or not at all.
    assert row_filter(reach(admin, "provider", VIEW), None, "", 8) == Q()
    assert row_filter(reach(admin, "provider", CHANGE), None, "", 8) == NOTHING


# --- one membership query per request --------------------------------------------------------


@contextmanager
def queries() -> Iterator[CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as ctx:
        yield ctx


def membership_queries(ctx: CaptureQueriesContext) -> int:
    table = Membership._meta.db_table
    return sum(f'"{table}"' in q["sql"] for q in ctx.captured_queries)


@pytest.fixture
def people(db: None) -> dict[str, User]:
    factories.stack("tenant-a")
    factories.stack("tenant-b")
    tenant_a, tenant_b = Tenant.objects.get(slug="tenant-a"), Tenant.objects.get(slug="tenant-b")
    admin = User.objects.create_user("admin-a", password="pw-1234567", is_staff=True)
    developer = User.objects.create_user("dev-ab", password="pw-1234567", is_staff=True)
    Membership.objects.create(user=admin, tenant=tenant_a, role=ADMIN)
    Membership.objects.create(user=developer, tenant=tenant_a, role=DEV)
    Membership.objects.create(user=developer, tenant=tenant_b, role=AUDITOR)
    for n in range(6):
        factories.key(tenant_a, [], name=f"app-{n}")
    return {"admin": admin, "developer": developer}


# Pinned from a measured run (before rules were cached per request: 17 queries, 5 of them for
# memberships; 68 for the changelist, 60 for memberships; 109 for the index, 104). A rise means
# a query per row or per check came back.
API_KEY_LIST_QUERIES = 7  # session, user, memberships, count, keys, their routes and groups
ADMIN_PAGE_QUERIES = {
    "/admin/asc_keys/virtualkey/": 9,  # session, user, memberships, tenants for the filter,
    # two counts, the user's Django permissions (two), keys
    "/admin/": 7,  # every model's "may this user see it" from the one membership query, and
    # the console's panels: today's usage by tenant, its top denials (the rollout: none to see)
}


def test_a_list_endpoint_asks_for_memberships_once(people: dict[str, User]) -> None:
    c = Client()
    c.force_login(people["admin"])
    with queries() as ctx:
        response = c.get("/api/v1/keys/")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 7  # the stack's key and six more, tenant-a only
    assert membership_queries(ctx) == 1
    assert len(ctx.captured_queries) <= API_KEY_LIST_QUERIES, ctx.captured_queries


@pytest.mark.parametrize("url", list(ADMIN_PAGE_QUERIES))
def test_an_admin_page_asks_for_memberships_once(people: dict[str, User], url: str) -> None:
    c = Client()
    c.force_login(people["admin"])
    with queries() as ctx:
        response = c.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Virtual keys" in page
    assert membership_queries(ctx) == 1
    assert len(ctx.captured_queries) <= ADMIN_PAGE_QUERIES[url], ctx.captured_queries
    if "virtualkey" in url:
        assert "app-5" in page
        assert "tenant-b" not in page


def test_memberships_are_kept_for_one_request_only(people: dict[str, User]) -> None:
    """A role granted between two requests counts from the next request on."""
    c = Client()
    c.force_login(people["developer"])
    keys_of = {
        slug: set(
            map(str, VirtualKey.objects.filter(tenant__slug=slug).values_list("pk", flat=True))
        )
        for slug in ("tenant-a", "tenant-b")
    }
    before = {k["id"] for k in c.get("/api/v1/keys/").json()["results"]}
    # An auditor of tenant-b; in tenant-a, a developer sees only keys they created (none).
    assert before == keys_of["tenant-b"]
    Membership.objects.filter(user=people["developer"], tenant__slug="tenant-a").update(role=ADMIN)
    with queries() as ctx:
        after = {k["id"] for k in c.get("/api/v1/keys/").json()["results"]}
    assert membership_queries(ctx) == 1
    assert after == keys_of["tenant-a"] | keys_of["tenant-b"]
