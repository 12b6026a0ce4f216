"""No existence oracles: a tenant admin naming a user they may not see (another tenant's
member, a platform admin) gets exactly the answer a user name that does not exist gets, on
create and on update, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from control_plane.tenancy.models import Membership, Tenant
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

UNKNOWN = "nobody-by-this-name"


@pytest.fixture
def world() -> dict[str, Any]:
    a, b = factories.tenant("tenant-a"), factories.tenant("tenant-b")
    admin = User.objects.create_user("admin-a", password="pw-1234567", is_staff=True)
    Membership.objects.create(user=admin, tenant=a, role="tenant_admin")
    colleague = User.objects.create_user("colleague-a", password="pw-1234567")
    Membership.objects.create(user=colleague, tenant=a, role="developer")
    elsewhere = User.objects.create_user("member-of-b", password="pw-1234567")
    Membership.objects.create(user=elsewhere, tenant=b, role="developer")
    User.objects.create_superuser("platform-admin", "p@example.com", "pw-1234567")
    User.objects.create_user("newcomer", password="pw-1234567")
    client = APIClient()
    client.force_authenticate(admin)
    return {"a": a, "client": client, "colleague": colleague}


def create(world: dict[str, Any], username: str) -> tuple[int, Any]:
    body = {"tenant": str(world["a"].id), "user": username, "role": "auditor"}
    response = world["client"].post("/api/v1/memberships/", body, format="json")
    return response.status_code, response.json()


def masked(answer: Any, username: str) -> str:
    """The answer with the name the caller sent taken out (it is echoed back, of course)."""
    return str(answer).replace(username, "<name>")


@pytest.mark.parametrize("hidden", ["member-of-b", "platform-admin"])
def test_adding_a_user_one_may_not_see_answers_like_an_unknown_user(
    world: dict[str, Any], hidden: str
) -> None:
    unknown_status, unknown_answer = create(world, UNKNOWN)
    status, answer = create(world, hidden)
    assert (status, masked(answer, hidden)) == (unknown_status, masked(unknown_answer, UNKNOWN))
    assert status == 400
    assert not Membership.objects.filter(user__username=hidden, tenant=world["a"]).exists()


def test_moving_a_membership_to_a_hidden_user_answers_like_an_unknown_user(
    world: dict[str, Any],
) -> None:
    membership = Membership.objects.get(user=world["colleague"])
    url = f"/api/v1/memberships/{membership.pk}/"
    answers = []
    for username in (UNKNOWN, "member-of-b"):
        body = {"tenant": str(world["a"].id), "user": username, "role": "auditor"}
        response = world["client"].put(url, body, format="json")
        answers.append((response.status_code, masked(response.json(), username)))
    assert answers[0] == answers[1]
    membership.refresh_from_db()
    assert (membership.user, membership.role) == (world["colleague"], "developer")


def test_users_one_may_name_can_still_be_added(world: dict[str, Any]) -> None:
    assert create(world, "newcomer")[0] == 201  # an account in no tenant yet
    b_admin = User.objects.create_user("admin-b", password="pw-1234567")
    Membership.objects.create(
        user=b_admin, tenant=Tenant.objects.get(slug="tenant-b"), role="tenant_admin"
    )
    Membership.objects.create(
        user=b_admin, tenant=world["a"], role="tenant_admin"
    )  # admin of both: sees both tenants' members
    client = APIClient()
    client.force_authenticate(b_admin)
    body = {"tenant": str(world["a"].id), "user": "member-of-b", "role": "auditor"}
    assert client.post("/api/v1/memberships/", body, format="json").status_code == 201


def test_the_admin_page_answers_a_hidden_user_like_an_unknown_one(world: dict[str, Any]) -> None:
    from django.contrib import admin
    from django.test import RequestFactory

    from control_plane.console.admin import MembershipInline

    request = RequestFactory().post("/")
    request.user = User.objects.get(username="admin-a")
    inline = MembershipInline(Tenant, admin.site)
    formset_class = inline.get_formset(request, world["a"])
    prefix = formset_class.get_default_prefix()

    def errors(username: str) -> str:
        data = {
            f"{prefix}-TOTAL_FORMS": "1",
            f"{prefix}-INITIAL_FORMS": "0",
            f"{prefix}-0-user": username,
            f"{prefix}-0-role": "auditor",
        }
        formset = formset_class(data, instance=world["a"], prefix=prefix)
        assert not formset.is_valid()
        return masked(formset.errors, username)

    assert errors("member-of-b") == errors(UNKNOWN)
    assert errors("platform-admin") == errors(UNKNOWN)
