"""Guardrail policies: validated before anything is written, published in the snapshot with
a route's own policy beside its tenant's, and never pointing across tenants."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from control_plane.fleet import selectors
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.snapshot_builder import build_policy
from control_plane.guardrails.models import GuardrailPolicy
from shared.consistency import problems
from shared.guardrails import CATEGORIES
from shared.pb import snapshot_pb2
from tests.control_plane import factories
from tests.control_plane.test_api import assert_error

pytestmark = pytest.mark.django_db


def body(tenant: Any, **extra: Any) -> dict[str, Any]:
    return {"tenant": str(tenant.pk), "name": "pii", **extra}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"categories": ["email", "no_such_detector"]}, "categories"),
        ({"categories": "email"}, "categories"),
        ({"actions": {"email": "shred"}}, "actions"),
        ({"actions": {"custom:nope": "block"}}, "actions"),
        ({"custom_patterns": [{"name": "p", "patterns": ["(unclosed"]}]}, "custom_patterns"),
        ({"custom_patterns": [{"name": "bad name!", "patterns": ["x"]}]}, "custom_patterns"),
        ({"keyword_lists": [{"name": "k", "words": []}]}, "keyword_lists"),
        ({"default_action": "explode"}, "default_action"),
    ],
)
def test_invalid_policies_are_refused_with_the_field_named(
    api: APIClient, extra: dict[str, Any], field: str
) -> None:
    a = factories.stack("tenant-a")
    before = PolicySnapshot.objects.count()
    error = assert_error(
        api.post("/api/v1/guardrails/", body(a["tenant"], **extra), format="json"),
        400,
        "invalid_request",
    )
    assert field in error["details"]
    assert GuardrailPolicy.objects.count() == 0
    assert PolicySnapshot.objects.count() == before


def test_route_of_another_tenant_is_refused(api: APIClient) -> None:
    a, b = factories.stack("tenant-a"), factories.stack("tenant-b")
    response = api.post(
        "/api/v1/guardrails/", body(a["tenant"], route=str(b["route"].pk)), format="json"
    )
    assert_error(response, 400, "invalid_request")
    assert GuardrailPolicy.objects.count() == 0


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
def test_policies_travel_in_the_snapshot(api: APIClient) -> None:
    a = factories.stack("tenant-a")
    tenant_wide = body(
        a["tenant"],
        categories=["email", "payment_card"],
        actions={"payment_card": "block", "custom:project": "tag"},
        custom_patterns=[{"name": "project", "patterns": [r"PRJ-\d{4}"], "ignore_case": True}],
        keyword_lists=[{"name": "codenames", "words": ["bluebird"]}],
    )
    assert api.post("/api/v1/guardrails/", tenant_wide, format="json").status_code == 201
    route_own = body(a["tenant"], name="strict", route=str(a["route"].pk), default_action="block")
    assert api.post("/api/v1/guardrails/", route_own, format="json").status_code == 201

    snapshot = snapshot_pb2.Snapshot.FromString(
        bytes(PolicySnapshot.objects.order_by("-version").first().payload)  # type: ignore[union-attr]
    )
    by_route = {g.route_id: g for g in snapshot.policy.guardrails}
    assert set(by_route) == {"", str(a["route"].pk)}
    wide = by_route[""]
    assert list(wide.categories) == ["email", "payment_card"]
    assert dict(wide.actions) == {"payment_card": "block", "custom:project": "tag"}
    assert wide.custom_patterns[0].patterns == [r"PRJ-\d{4}"]
    assert wide.custom_patterns[0].ignore_case
    assert list(wide.keyword_lists[0].words) == ["bluebird"]
    assert by_route[str(a["route"].pk)].default_action == "block"


def test_a_second_tenant_wide_policy_is_refused(api: APIClient) -> None:
    a = factories.stack("tenant-a")
    assert api.post("/api/v1/guardrails/", body(a["tenant"]), format="json").status_code == 201
    response = api.post("/api/v1/guardrails/", body(a["tenant"], name="again"), format="json")
    assert_error(response, 409, "conflict")
    assert GuardrailPolicy.objects.count() == 1


def test_disabled_policies_are_left_out_and_cross_tenant_routes_fail_validation() -> None:
    a, b = factories.stack("tenant-a"), factories.stack("tenant-b")
    GuardrailPolicy.objects.create(tenant=a["tenant"], name="off", enabled=False)
    assert not build_policy(selectors.policy_rows()).guardrails
    policy = build_policy(selectors.policy_rows())
    policy.guardrails.add(id="g", tenant_id=str(a["tenant"].pk), route_id=str(b["route"].pk))
    assert any("of another tenant" in p for p in problems(policy))


def test_the_vocabulary_matches_the_data_planes_detectors() -> None:
    from data_plane.guardrails import BUILTIN_CATEGORIES  # a test may look at both planes

    assert frozenset(BUILTIN_CATEGORIES) == CATEGORIES
