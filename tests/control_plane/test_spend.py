"""GET /api/v1/spend/: spend, tokens and requests grouped by tag, project, key, end user,
route, provider, model or tenant over a date range, scoped to what the caller may see, as JSON
or CSV, with a 400 in the API's error shape for a bad group_by or date. And the admin's spend
page over the same query; and the save-time rules of tags and tag limits."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from control_plane.keys.models import VirtualKey
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Membership, Project, Tenant
from control_plane.usage.models import UsageRecord
from shared.pb.snapshot_pb2 import LIMIT_SCOPE_TAG
from tests.control_plane import factories

DAY = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def used(
    key: VirtualKey,
    route: Any,
    model: Any,
    n: int,
    cost: int,
    *,
    ts: datetime = DAY,
    tags: dict[str, str] | None = None,
    subject: str = "",
) -> None:
    for i in range(n):
        UsageRecord.objects.create(
            request_id=f"{key.name}-{ts:%Y%m%d%H}-{cost}-{i}-{sorted((tags or {}).items())}",
            ts=ts,
            node_id="n",
            tenant_id=key.tenant_id,
            key=key,
            route=route,
            model=model,
            provider_id=model.provider_id,
            subject=subject,
            prompt_tokens=10,
            completion_tokens=5,
            cost_nano_usd=cost,
            tags=tags or {},
        )


@pytest.fixture
def world(db: None) -> dict[str, Any]:
    """acme: a "search" project with key "app" (tagged traffic) and key "batch"; beta: its own
    key with the same tag values (which acme's callers must never see)."""
    a, b = factories.stack("acme"), factories.stack("beta")
    project = Project.objects.create(tenant=a["tenant"], name="search")
    app_key = a["key"]
    app_key.project = project
    app_key.save()
    batch, _ = factories.key(a["tenant"], [a["route"]], name="batch")
    route, model = a["route"], a["model"]
    used(app_key, route, model, 3, 1_000_000, tags={"feature": "summarizer"}, subject="alice")
    used(app_key, route, model, 2, 500_000, tags={"feature": "search"}, subject="bob")
    used(batch, route, model, 1, 7, tags={"team": "ml"})
    used(batch, route, model, 4, 100, ts=datetime(2026, 10, 1, tzinfo=UTC))  # before the range
    used(b["key"], b["route"], b["model"], 5, 9_000_000, tags={"feature": "summarizer"})
    return {"a": a, "b": b, "project": project, "batch": batch}


def spend(client: APIClient, **params: str) -> Any:
    query = {"since": "2026-11-01", "until": "2026-11-03", **params}
    return client.get("/api/v1/spend/", query)


def groups(response: Any) -> dict[str | None, tuple[int, int, int]]:
    assert response.status_code == 200, response.content
    return {
        g["group"]: (g["requests"], g["total_tokens"], g["cost_nano_usd"])
        for g in response.json()["groups"]
    }


def member(tenant: Tenant, role: str, name: str) -> APIClient:
    user = User.objects.create_user(name, password="pw-member-123")
    Membership.objects.create(user=user, tenant=tenant, role=role)
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_grouped_by_a_tag(world: dict[str, Any], api: APIClient) -> None:
    response = spend(api, group_by="tag:feature", tenant=str(world["a"]["tenant"].pk))
    assert groups(response) == {
        "summarizer": (3, 45, 3_000_000),
        "search": (2, 30, 1_000_000),
        None: (1, 15, 7),  # requests without the tag
    }
    body = response.json()
    assert [g["group"] for g in body["groups"]] == ["summarizer", "search", None]  # most spent
    assert body["groups"][0]["spend_usd"] == pytest.approx(0.003)
    assert body["totals"]["requests"] == 6
    assert body["totals"]["cost_nano_usd"] == 4_000_007


def test_grouped_by_each_dimension_with_names(world: dict[str, Any], api: APIClient) -> None:
    a, tenant = world["a"], str(world["a"]["tenant"].pk)
    by_key = spend(api, group_by="key", tenant=tenant).json()["groups"]
    assert [(g["label"], g["requests"]) for g in by_key] == [("app", 5), ("batch", 1)]
    by_project = spend(api, group_by="project", tenant=tenant).json()["groups"]
    assert [(g["label"], g["requests"]) for g in by_project] == [("search", 5), ("", 1)]
    assert groups(spend(api, group_by="end_user", tenant=tenant)) == {
        "alice": (3, 45, 3_000_000),
        "bob": (2, 30, 1_000_000),
        None: (1, 15, 7),
    }
    for group_by, row in (("route", a["route"]), ("model", a["model"])):
        found = spend(api, group_by=group_by, tenant=tenant).json()["groups"]
        assert [(g["group"], g["requests"]) for g in found] == [(str(row.pk), 6)]
    by_model = spend(api, group_by="model", tenant=tenant).json()["groups"]
    assert by_model[0]["label"] == a["model"].provider_model
    by_route = spend(api, group_by="route", tenant=tenant).json()["groups"]
    assert by_route[0]["label"] == "chat"
    by_tenant = spend(api, group_by="tenant").json()["groups"]
    assert [(g["label"], g["requests"]) for g in by_tenant] == [("beta", 5), ("acme", 6)]
    by_provider = spend(api, group_by="provider").json()["groups"]
    assert [(g["label"], g["requests"]) for g in by_provider] == [("mock", 11)]


def test_the_range_is_since_inclusive_until_exclusive(
    world: dict[str, Any], api: APIClient
) -> None:
    tenant = str(world["a"]["tenant"].pk)
    assert groups(spend(api, group_by="key", tenant=tenant, since="2026-10-01")) == {
        str(world["a"]["key"].pk): (5, 75, 4_000_000),
        str(world["batch"].pk): (5, 75, 407),
    }
    assert groups(spend(api, group_by="key", tenant=tenant, until="2026-11-02T12:00:00Z")) == {}
    later = spend(api, group_by="key", tenant=tenant, until="2026-11-02T12:00:01+00:00")
    assert sum(r for r, _, _ in groups(later).values()) == 6


def test_a_tenant_member_sees_only_their_tenant(world: dict[str, Any]) -> None:
    auditor = member(world["a"]["tenant"], "auditor", "finance")
    assert groups(spend(auditor, group_by="tag:feature")) == {
        "summarizer": (3, 45, 3_000_000),
        "search": (2, 30, 1_000_000),
        None: (1, 15, 7),
    }
    other = spend(auditor, group_by="tenant", tenant=str(world["b"]["tenant"].pk))
    assert groups(other) == {}  # another tenant's id: nothing, not an error


def test_a_developer_sees_only_their_own_keys(world: dict[str, Any]) -> None:
    tenant = world["a"]["tenant"]
    developer = member(tenant, "developer", "dev")
    assert groups(spend(developer, group_by="key")) == {}
    own, _ = factories.key(tenant, [world["a"]["route"]], name="mine")
    own.created_by = User.objects.get(username="dev")
    own.save()
    used(own, world["a"]["route"], world["a"]["model"], 2, 50, tags={"feature": "search"})
    assert groups(spend(developer, group_by="tag:feature")) == {"search": (2, 30, 100)}


def test_anonymous_callers_are_refused(world: dict[str, Any]) -> None:
    response = spend(APIClient(), group_by="key")
    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_csv_by_format_or_accept(world: dict[str, Any], api: APIClient) -> None:
    tenant = str(world["a"]["tenant"].pk)
    for response in (
        spend(api, group_by="tag:feature", tenant=tenant, format="csv"),
        api.get(
            "/api/v1/spend/",
            {
                "group_by": "tag:feature",
                "tenant": tenant,
                "since": "2026-11-01",
                "until": "2026-11-03",
            },
            HTTP_ACCEPT="text/csv",
        ),
    ):
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert "spend-by-tag-feature-20261101-20261103.csv" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert [(r["group"], r["requests"], r["cost_nano_usd"]) for r in rows] == [
            ("summarizer", "3", "3000000"),
            ("search", "2", "1000000"),
            ("", "1", "7"),
        ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"group_by": "tag:"}, "group_by"),
        ({"group_by": "tag:has space"}, "group_by"),
        ({"group_by": "tag:0"}, "group_by"),
        ({}, "group_by"),
        ({"group_by": "key", "since": "yesterday"}, "since"),
        ({"group_by": "key", "until": "2026-13-01"}, "until"),
        ({"group_by": "key", "since": "2026-11-03", "until": "2026-11-01"}, "until"),
        ({"group_by": "key", "tenant": "acme"}, "tenant"),
    ],
)
def test_bad_input_is_a_400_in_the_apis_shape(
    world: dict[str, Any], api: APIClient, params: dict[str, str], field: str
) -> None:
    query = {"since": "2026-11-01", "until": "2026-11-03", **params}
    if not params:
        query = {}
    for extra in ({}, {"format": "csv"}):
        response = api.get("/api/v1/spend/", {**query, **extra})
        assert response.status_code == 400
        body = response.json()
        assert body["error"]["code"] == "invalid_request"
        assert field in body["error"]["details"]


def test_extreme_dates_are_answered(world: dict[str, Any], api: APIClient) -> None:
    for params in ({"until": "0001-01-05"}, {"since": "0001-01-01", "until": "9999-12-31"}):
        response = api.get("/api/v1/spend/", {"group_by": "key", **params})
        assert response.status_code == 200, response.content


def test_an_unknown_format_is_not_acceptable(world: dict[str, Any], api: APIClient) -> None:
    response = spend(api, group_by="key", format="xml")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"


def test_the_admin_spend_page_groups_and_exports(world: dict[str, Any], admin_user: User) -> None:
    from django.test import Client

    client = Client()
    client.force_login(admin_user)
    listing = client.get("/admin/asc_usage/usagerecord/")
    assert b"/admin/asc_usage/usagerecord/spend/" in listing.content
    page = client.get(
        "/admin/asc_usage/usagerecord/spend/",
        {"group_by": "tag:feature", "from": "2026-11-01", "to": "2026-11-02"},
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "summarizer" in text
    assert "search" in text
    assert "0.048000" in text  # summarizer: acme's 3 x 1,000,000 and beta's 5 x 9,000,000
    exported = client.get(
        "/admin/asc_usage/usagerecord/spend/",
        {"group_by": "tag:feature", "from": "2026-11-01", "to": "2026-11-02", "format": "csv"},
    )
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [(r["group"], r["requests"]) for r in rows] == [
        ("summarizer", "8"),
        ("search", "2"),
        ("", "1"),
    ]
    edge = client.get(
        "/admin/asc_usage/usagerecord/spend/", {"from": "0001-01-01", "to": "9999-12-31"}
    )
    assert edge.status_code == 200
    bad = client.get("/admin/asc_usage/usagerecord/spend/", {"group_by": "colour"})
    assert bad.status_code == 200
    assert "group_by is one of" in bad.content.decode()


# Save-time rules


def test_tenant_tag_rules_are_checked_when_saved(db: None) -> None:
    tenant = Tenant(slug="t", name="T", allowed_tags={"feature": ["summarizer"], "team": []})
    tenant.full_clean()
    for bad in ({"has space": []}, {"feature": "summarizer"}, ["feature"], {"f": ["a b"]}):
        tenant.allowed_tags = bad
        with pytest.raises(ValidationError) as refused:
            tenant.full_clean()
        assert "allowed_tags" in refused.value.message_dict


def test_key_and_project_tags_must_be_allowed_by_their_tenant(db: None) -> None:
    stack = factories.stack()
    tenant, key = stack["tenant"], stack["key"]
    tenant.allowed_tags = {"feature": ["summarizer"], "team": []}
    tenant.save()
    key.tags = {"feature": "summarizer", "team": "search"}
    key.full_clean()
    key.tags = {"feature": "translator"}
    with pytest.raises(ValidationError, match="feature=translator"):
        key.full_clean()
    project = Project(tenant=tenant, name="p", tags={"colour": "blue"})
    with pytest.raises(ValidationError, match="colour=blue"):
        project.full_clean()
    project.tags = {"team": "x y"}
    with pytest.raises(ValidationError, match="value"):
        project.full_clean()


def test_a_tag_limit_names_an_allowed_tag_value(db: None) -> None:
    stack = factories.stack()
    tenant = stack["tenant"]
    tenant.allowed_tags = {"feature": ["summarizer"]}
    tenant.save()
    limit = Limit(tenant=tenant, scope="tag", tag="feature=summarizer", amount=Decimal(5))
    limit.full_clean()
    assert limit.subject_id() == "feature=summarizer"
    for bad, message in (
        ("feature=translator", "does not allow"),
        ("feature", "well-formed"),
        ("", "well-formed"),
    ):
        limit.tag = bad
        with pytest.raises(ValidationError, match=message):
            limit.full_clean()
    key_limit = Limit(tenant=tenant, scope="key", key=stack["key"], tag="feature=x", amount=1)
    with pytest.raises(ValidationError, match="only a tag limit"):
        key_limit.full_clean()


def test_tags_through_the_api_are_checked_and_published(api: APIClient) -> None:
    stack = factories.stack()
    tenant, key = stack["tenant"], stack["key"]
    url = f"/api/v1/tenants/{tenant.pk}/"
    bad = api.patch(url, {"allowed_tags": {"bad key": []}}, format="json")
    assert bad.status_code == 400
    assert "allowed_tags" in bad.json()["error"]["details"]
    rules = {"feature": ["summarizer"], "team": []}
    ok = api.patch(url, {"allowed_tags": rules, "drop_unknown_tags": True}, format="json")
    assert ok.status_code == 200, ok.content
    assert (ok.json()["allowed_tags"], ok.json()["drop_unknown_tags"]) == (rules, True)
    refused = api.patch(f"/api/v1/keys/{key.pk}/", {"tags": {"feature": "x"}}, format="json")
    assert refused.status_code == 400
    assert "feature=x" in str(refused.json()["error"]["details"])
    tagged = api.patch(f"/api/v1/keys/{key.pk}/", {"tags": {"team": "ml"}}, format="json")
    assert tagged.status_code == 200, tagged.content
    assert tagged.json()["tags"] == {"team": "ml"}
    project = api.post(
        "/api/v1/projects/",
        {"tenant": str(tenant.pk), "name": "p", "tags": {"team": "search"}},
        format="json",
    )
    assert project.status_code == 201, project.content
    limit = api.post(
        "/api/v1/limits/",
        {"tenant": str(tenant.pk), "scope": "tag", "tag": "feature=summarizer", "amount": "5"},
        format="json",
    )
    assert limit.status_code == 201, limit.content
    wrong = api.post(
        "/api/v1/limits/",
        {"tenant": str(tenant.pk), "scope": "tag", "tag": "feature=other", "amount": "5"},
        format="json",
    )
    assert wrong.status_code == 400
    assert "tag" in wrong.json()["error"]["details"]
    # The rules may not drop a tag value a limit is on.
    orphaning = api.patch(url, {"allowed_tags": {"team": []}}, format="json")
    assert orphaning.status_code == 400
    assert "feature=summarizer" in str(orphaning.json()["error"]["details"])
    # What was accepted reaches the snapshot.
    from control_plane.fleet.selectors import policy_rows
    from control_plane.fleet.snapshot_builder import build_policy

    policy = build_policy(policy_rows())
    acme = next(t for t in policy.tenants if t.id == str(tenant.pk))
    assert [(r.key, list(r.values)) for r in acme.allowed_tags] == [
        ("feature", ["summarizer"]),
        ("team", []),
    ]
    assert acme.drop_unknown_tags
    (pb_key,) = [k for k in policy.keys if k.id == str(key.pk)]
    assert [(t.key, t.value) for t in pb_key.tags] == [("team", "ml")]
    (pb_project,) = policy.projects
    assert [(t.key, t.value) for t in pb_project.tags] == [("team", "search")]
    (pb_limit,) = policy.limits
    assert (pb_limit.scope, pb_limit.subject_id) == (LIMIT_SCOPE_TAG, "feature=summarizer")


def test_the_usage_list_filters_by_tag_value(world: dict[str, Any], api: APIClient) -> None:
    found = api.get("/api/v1/usage/", {"tag": "feature=summarizer", "limit": 100}).json()
    assert found["count"] == 8
    assert all(r["tags"] == {"feature": "summarizer"} for r in found["results"])
    bad = api.get("/api/v1/usage/", {"tag": "feature"})
    assert bad.status_code == 400
    assert "tag" in bad.json()["error"]["details"]


def test_the_admin_spend_page_shows_a_member_their_tenants_only(world: dict[str, Any]) -> None:
    from django.test import Client

    user = User.objects.create_user("finance", password="pw-member-123", is_staff=True)
    Membership.objects.create(user=user, tenant=world["a"]["tenant"], role="auditor")
    client = Client()
    client.force_login(user)
    exported = client.get(
        "/admin/asc_usage/usagerecord/spend/",
        {"group_by": "tag:feature", "from": "2026-11-01", "to": "2026-11-02", "format": "csv"},
    )
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert [(r["group"], r["requests"]) for r in rows] == [
        ("summarizer", "3"),
        ("search", "2"),
        ("", "1"),
    ]
    page = client.get("/admin/asc_usage/usagerecord/spend/").content.decode()
    assert ">acme<" in page
    assert ">beta<" not in page
