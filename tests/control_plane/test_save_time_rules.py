"""A tenant's bad row is refused when it is saved, with the rules the snapshot is checked
against (``shared.rules``), so it never reaches the publisher, where it would stop the publish
of every tenant; and a publisher meeting an inconsistent policy stores nothing."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.services import load_snapshot, publish_snapshot
from control_plane.guardrails.models import GuardrailPolicy
from control_plane.limits.models import Limit
from control_plane.tenancy.models import Membership, Tenant
from shared import rules
from shared.consistency import InconsistentSnapshot
from tests.control_plane import factories
from tests.control_plane.test_api import assert_error

pytestmark = pytest.mark.django_db

GUARDRAILS = "/api/v1/guardrails/"
LIMITS = "/api/v1/limits/"


def tenant_admin(tenant: Tenant, name: str) -> User:
    user = User.objects.create_user(name, password="pw-1234567", is_staff=True)
    Membership.objects.create(user=user, tenant=tenant, role="tenant_admin")
    return user


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def patterns(max_len: Any) -> list[dict[str, Any]]:
    return [{"name": "project", "patterns": [r"PRJ-\d{4}"], "max_len": max_len}]


def guardrail(tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return {"tenant": str(tenant.pk), "name": "pii", **extra}


def latest() -> PolicySnapshot | None:
    return PolicySnapshot.objects.order_by("-version").first()


BAD_MAX_LEN = [0, -1, rules.MAX_MATCH_LEN + 1, 2**32, 2**63, "64", True, 1.5, None]


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
@pytest.mark.parametrize("max_len", BAD_MAX_LEN)
def test_a_bad_max_len_is_refused_nothing_is_published_and_other_tenants_still_publish(
    max_len: Any,
) -> None:
    a, b = factories.stack("tenant-a"), factories.stack("tenant-b")
    publish_snapshot("baseline")
    before = latest()
    api_a = client_for(tenant_admin(a["tenant"], "admin-a"))  # type: ignore[arg-type]

    response = api_a.post(
        GUARDRAILS, guardrail(a["tenant"], custom_patterns=patterns(max_len)), format="json"
    )
    error = assert_error(response, 400, "invalid_request")
    assert list(error["details"]) == ["custom_patterns"]
    assert "max_len" in str(error["details"]["custom_patterns"])
    assert not GuardrailPolicy.objects.exists()
    assert latest() == before  # nothing published

    api_b = client_for(tenant_admin(b["tenant"], "admin-b"))  # type: ignore[arg-type]
    good = guardrail(b["tenant"], custom_patterns=patterns(rules.MAX_MATCH_LEN))
    assert api_b.post(GUARDRAILS, good, format="json").status_code == 201
    after = latest()
    assert after is not None
    assert before is not None
    assert after.version == before.version + 1
    (published,) = load_snapshot(after).policy.guardrails
    assert published.tenant_id == str(b["tenant"].pk)  # type: ignore[attr-defined]
    assert published.custom_patterns[0].max_len == rules.MAX_MATCH_LEN


@pytest.mark.django_db(transaction=True)
def test_changing_a_sound_policy_to_a_bad_max_len_is_refused_and_changes_nothing() -> None:
    a = factories.stack("tenant-a")
    api = client_for(tenant_admin(a["tenant"], "admin-a"))  # type: ignore[arg-type]
    created = api.post(
        GUARDRAILS, guardrail(a["tenant"], custom_patterns=patterns(32)), format="json"
    )
    assert created.status_code == 201, created.content
    before = latest()
    url = f"{GUARDRAILS}{created.json()['id']}/"
    response = api.patch(url, {"custom_patterns": patterns(100_000)}, format="json")
    assert "custom_patterns" in assert_error(response, 400, "invalid_request")["details"]
    assert GuardrailPolicy.objects.get().custom_patterns == patterns(32)
    assert latest() == before


@pytest.mark.parametrize(
    ("custom_patterns", "message"),
    [
        # A repeat count too large: OverflowError, not re.error (once a 500 here).
        ([{"name": "p", "patterns": ["a{99999999999}"]}], "bad pattern"),
        ([{"name": "p", "patterns": ["x"], "max_length": 10}], "unknown keys ['max_length']"),
        ([{"name": "p", "patterns": ["x"], "ignore_case": "yes"}], "ignore_case"),
        ([{"name": "p", "patterns": "x"}], "patterns"),
        ([{"name": "p", "patterns": ["x"]}, {"name": "p", "patterns": ["y"]}], "unique"),
    ],
)
def test_custom_patterns_the_data_plane_could_not_compile_are_refused(
    api: APIClient, custom_patterns: list[dict[str, Any]], message: str
) -> None:
    a = factories.stack("tenant-a")
    response = api.post(
        GUARDRAILS, guardrail(a["tenant"], custom_patterns=custom_patterns), format="json"
    )
    error = assert_error(response, 400, "invalid_request")
    assert message in str(error["details"]["custom_patterns"])
    assert not GuardrailPolicy.objects.exists()


def test_a_budget_the_snapshot_cannot_hold_is_refused(api: APIClient) -> None:
    a = factories.stack("tenant-a")
    body = {"tenant": str(a["tenant"].pk), "scope": "tenant", "kind": "budget", "period": "month"}
    too_large = str(rules.MAX_LIMIT_UNITS // 10**9 + 1)  # USD: nano-USD past int64
    error = assert_error(
        api.post(LIMITS, {**body, "amount": too_large}, format="json"), 400, "invalid_request"
    )
    assert "out of range" in str(error["details"]["amount"])
    assert not Limit.objects.exists()
    largest = str(rules.MAX_LIMIT_UNITS // 10**9)
    assert api.post(LIMITS, {**body, "amount": largest}, format="json").status_code == 201


def test_a_budget_per_minute_is_refused(api: APIClient) -> None:
    a = factories.stack("tenant-a")
    body = {"tenant": str(a["tenant"].pk), "kind": "budget", "period": "minute", "amount": "5"}
    error = assert_error(api.post(LIMITS, body, format="json"), 400, "invalid_request")
    assert "period" in error["details"]
    assert not Limit.objects.exists()


def test_the_admin_shows_a_bad_max_len_as_a_form_error() -> None:
    a = factories.stack("tenant-a")
    browser = Client()
    browser.force_login(tenant_admin(a["tenant"], "admin-a"))  # type: ignore[arg-type]
    form = {
        "tenant": str(a["tenant"].pk),  # type: ignore[attr-defined]
        "name": "pii",
        "enabled": "on",
        "on_input": "on",
        "on_output": "on",
        "categories": "[]",
        "actions": "{}",
        "default_action": "redact",
        "custom_patterns": '[{"name": "project", "patterns": ["PRJ-\\\\d+"], "max_len": 0}]',
        "keyword_lists": "[]",
    }
    page = browser.post("/admin/asc_guardrails/guardrailpolicy/add/", form)
    assert page.status_code == 200  # the form again, not a redirect
    errors = page.context["adminform"].form.errors
    assert "max_len 0 is out of range" in str(errors["custom_patterns"])
    assert not GuardrailPolicy.objects.exists()
    form["custom_patterns"] = form["custom_patterns"].replace('"max_len": 0', '"max_len": 16')
    assert browser.post("/admin/asc_guardrails/guardrailpolicy/add/", form).status_code == 302
    assert GuardrailPolicy.objects.get().custom_patterns[0]["max_len"] == 16


@pytest.mark.parametrize(
    ("max_len", "problem"),
    [
        (5000, "max_len 5000 is out of range"),  # fits the snapshot; the check refuses it
        (-1, "cannot be encoded"),  # does not even fit the snapshot's uint32
    ],
)
def test_a_row_saved_around_the_rules_is_never_published(
    max_len: int, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = factories.stack("tenant-a")
    first = publish_snapshot("baseline").snapshot
    GuardrailPolicy.objects.create(  # straight into the table: no validation
        tenant=a["tenant"], name="legacy", custom_patterns=patterns(max_len)
    )
    with (
        caplog.at_level(logging.ERROR, logger="control_plane.fleet.services"),
        pytest.raises(InconsistentSnapshot) as raised,
    ):
        publish_snapshot("with the bad row")
    assert any(problem in p for p in raised.value.problems), raised.value.problems
    assert latest() == first
    assert any(
        "snapshot not published" in r.message and problem in r.message for r in caplog.records
    )
