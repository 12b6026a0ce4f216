"""Snapshot history: the diff between versions, and rollback publishing the old policy."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from control_plane.catalog import services as catalog
from control_plane.catalog.models import ProviderCredential, Route
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.rollback import rollback_to
from control_plane.fleet.services import load_snapshot, publish_snapshot
from control_plane.fleet.snapshot_diff import diff_policies
from control_plane.keys.services import revoke_keys
from tests.control_plane import factories

pytestmark = pytest.mark.django_db(transaction=True)  # rollback publishes on commit


def test_diff_names_what_changed() -> None:
    rows = factories.stack()
    v1 = publish_snapshot().snapshot
    route: Route = rows["route"]  # type: ignore[assignment]
    route.name = "chat-renamed"
    route.save()
    factories.tenant("newcomer")
    cred: ProviderCredential = rows["credential"]  # type: ignore[assignment]
    catalog.set_credential_secret(cred, "sk-rotated-secret-000")
    cred.save()
    v2 = publish_snapshot().snapshot
    changes = {(c.kind, c.label, c.action, c.fields) for c in diff_policies(
        load_snapshot(v1).policy, load_snapshot(v2).policy
    )}  # fmt: skip
    assert ("route", "chat-renamed", "changed", ("name",)) in changes
    assert ("tenant", "newcomer", "added", ()) in changes
    assert ("credential", str(cred.pk), "changed", ("secret",)) in changes
    assert len(changes) == 3


def test_rollback_restores_the_old_policy_as_a_new_version() -> None:
    rows = factories.stack()
    v1 = publish_snapshot().snapshot
    route: Route = rows["route"]  # type: ignore[assignment]
    factories.route(rows["tenant"], rows["model"], rows["credential"], name="added-later")  # type: ignore[arg-type]
    route.name = "renamed"
    route.save()
    cred: ProviderCredential = rows["credential"]  # type: ignore[assignment]
    catalog.set_credential_secret(cred, "sk-rotated-secret-000")
    cred.save()
    publish_snapshot()
    rollback_to(v1.version, actor=None)
    latest = PolicySnapshot.objects.order_by("-version").first()
    assert latest is not None
    assert latest.version > v1.version
    # Rows are restored by name (a route renamed since comes back as a new row), so the new
    # version holds the old configuration, compared as the document that produced it.
    assert latest.document == v1.document, "the new version holds exactly the old configuration"
    assert set(Route.objects.values_list("name", flat=True)) == {"chat"}


def test_rollback_never_brings_back_a_revoked_key() -> None:
    rows = factories.stack()
    v1 = publish_snapshot().snapshot
    revoke_keys([rows["key"]], actor=None)  # type: ignore[list-item]
    publish_snapshot()
    rollback_to(v1.version, actor=None)
    latest = load_snapshot(PolicySnapshot.objects.order_by("-version").first())  # type: ignore[arg-type]
    assert len(latest.policy.keys) == 0


def test_admin_diff_page_and_rollback_button() -> None:
    factories.stack()
    v1 = publish_snapshot().snapshot
    factories.tenant("later")
    v2 = publish_snapshot().snapshot
    admin = User.objects.create_superuser("root", "r@x.io", "pw-1234567")
    c = Client()
    c.force_login(admin)
    page = c.get(f"/admin/asc_fleet/policysnapshot/{v2.version}/diff/").content.decode()
    assert '<tr class="asc-added"><td>tenant</td><td>later</td>' in page
    response = c.post(f"/admin/asc_fleet/policysnapshot/{v1.version}/rollback/")
    assert response.status_code == 302
    latest = PolicySnapshot.objects.order_by("-version").first()
    assert latest is not None
    assert latest.version == v2.version + 1
    policy = load_snapshot(latest).policy
    changes = diff_policies(load_snapshot(v1).policy, policy)
    assert [(c.kind, c.label, c.action) for c in changes] == [("tenant", "later", "added")]
    assert not next(t for t in policy.tenants if t.slug == "later").active, "disabled by rollback"


def test_only_platform_admins_roll_back() -> None:
    factories.stack()
    v1 = publish_snapshot().snapshot
    user = User.objects.create_user("staff", password="pw-1234567", is_staff=True)
    c = Client()
    c.force_login(user)
    assert c.post(f"/admin/asc_fleet/policysnapshot/{v1.version}/rollback/").status_code == 403
    assert c.get(f"/admin/asc_fleet/policysnapshot/{v1.version}/diff/").status_code == 403
