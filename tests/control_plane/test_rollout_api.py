"""Rollouts in the product: the REST API (start, status, pause, resume, advance, abort), its
OpenAPI schema, and the admin pages (list, one rollout, the start form, the buttons)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from control_plane.fleet.models import DataPlaneNode
from control_plane.fleet.services import publish_snapshot
from control_plane.rollouts import services as rollouts
from control_plane.rollouts.models import Rollout
from control_plane.tenancy import services as tenancy
from control_plane.tenancy.models import Membership, Tenant
from shared.pb import control_pb2
from tests.control_plane import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform() -> User:
    factories.stack()
    for i, region in enumerate(["eu", "eu", "us", "us"]):
        DataPlaneNode.objects.create(node_id=f"dp-{i}", region=region, connected=True)
    publish_snapshot("baseline")
    return User.objects.create_superuser("root", "root@example.com", "pw-root-12345")


def client(user: User) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_the_rollout_endpoints_are_in_the_schema() -> None:
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/rollouts/"])
    for what in ("advance", "pause", "resume", "abort"):
        assert "post" in paths[f"/api/v1/rollouts/{{id}}/{what}/"]
    assert "get" in paths["/api/v1/rollouts/{id}/"]


def test_start_status_pause_resume_advance_abort_through_the_api(platform: User) -> None:
    api = client(platform)
    bad = api.post("/api/v1/rollouts/", {"steps": [50, 25], "soak_s": 60}, format="json")
    assert bad.status_code == 409
    assert "rise strictly" in bad.json()["error"]["message"]
    started = api.post(
        "/api/v1/rollouts/", {"steps": [50, 100], "soak_s": 600, "region": "us"}, format="json"
    )
    assert started.status_code == 201, started.content
    pk = started.json()["id"]
    again = api.post("/api/v1/rollouts/", {"steps": [100], "soak_s": 0}, format="json")
    assert again.status_code == 409
    assert "is in flight" in again.json()["error"]["message"]

    tenant = Tenant.objects.get(slug="acme")
    tenant.allowed_regions = ["us"]
    tenancy.put_tenant(tenant, actor=platform)  # the staged change
    version = publish_snapshot("the change").snapshot.version
    rollouts.tick()
    rollouts.record_health("dp-2", [control_pb2.VersionHealth(version=version, requests=3)])
    status = api.get(f"/api/v1/rollouts/{pk}/").json()
    assert status["version"] == version
    assert status["canary_nodes"] == ["dp-2", "dp-3"], "half the fleet, the region first"
    by_node = {n["node_id"]: n["serves"] for n in status["nodes"]}
    assert by_node == {"dp-0": version - 1, "dp-1": version - 1, "dp-2": version, "dp-3": version}
    assert status["canary_health"]["requests"] == 3

    paused = api.post(f"/api/v1/rollouts/{pk}/pause/", {"reason": "lunch"}, format="json")
    assert paused.json()["state"] == "paused"
    assert paused.json()["decisions"][-1]["reason"] == "lunch"
    assert api.post(f"/api/v1/rollouts/{pk}/resume/").json()["state"] == "running"
    advanced = api.post(f"/api/v1/rollouts/{pk}/advance/").json()
    assert advanced["step"] == 1
    assert {n["serves"] for n in advanced["nodes"]} == {version}
    aborted = api.post(f"/api/v1/rollouts/{pk}/abort/", {"reason": "enough"}, format="json")
    assert aborted.json()["state"] == "aborted"
    assert [(d["action"], d["by_name"]) for d in aborted.json()["decisions"]] == [
        ("start", "root"),
        ("staged", "system"),
        ("pause", "root"),
        ("resume", "root"),
        ("advance", "root"),
        ("abort", "root"),
    ]
    tenant.refresh_from_db()
    assert tenant.allowed_regions == [], "the baseline's configuration is back"


def test_auditors_read_rollouts_and_change_nothing(platform: User) -> None:
    rollout = rollouts.start(steps=[100], soak_s=0, actor=platform)
    auditor = User.objects.create_user("aud", password="pw-aud-123456", is_staff=True)
    Membership.objects.create(user=auditor, tenant=Tenant.objects.get(), role="auditor")
    api = client(auditor)
    assert api.get(f"/api/v1/rollouts/{rollout.pk}/").status_code == 200
    assert api.post(f"/api/v1/rollouts/{rollout.pk}/abort/").status_code == 403
    assert Rollout.objects.get().state == "running"


def test_the_admin_rollout_pages(platform: User) -> None:
    web = Client()
    web.force_login(platform)
    assert "Stage the next change" in web.get("/admin/asc_rollouts/rollout/").content.decode()
    form = {"steps": "25,100", "soak_s": "60", "threshold": "0.1", "min_requests": "20"}
    response = web.post("/admin/asc_rollouts/rollout/start/", {**form, "nodes": "dp-1"})
    assert response.status_code == 302
    rollout = Rollout.objects.get()
    assert rollout.nodes == ["dp-1"]
    refused = web.post("/admin/asc_rollouts/rollout/start/", form).content.decode()
    assert "is in flight" in refused

    tenant = Tenant.objects.get(slug="acme")
    tenant.allowed_regions = ["eu"]
    tenancy.put_tenant(tenant, actor=platform)
    publish_snapshot("the change")
    rollouts.tick()
    page = web.get(f"/admin/asc_rollouts/rollout/{rollout.pk}/change/").content.decode()
    assert '<tr class="asc-canary"><td>dp-1</td>' in page
    assert page.count('class="asc-baseline"><td>dp-') == 3
    assert '<tr class="asc-canaries">' in page
    assert '<tr class="asc-baseline"><th>baseline' in page
    assert "Abort and restore" in page
    web.post(f"/admin/asc_rollouts/rollout/{rollout.pk}/act/abort/")
    page = web.get(f"/admin/asc_rollouts/rollout/{rollout.pk}/change/").content.decode()
    assert '<tr class="asc-abort">' in page
    assert "Abort and restore" not in page, "nothing left to do"
    history = web.get("/admin/asc_fleet/policysnapshot/").content.decode()
    assert f"staged, rollout {rollout.pk} (aborted)" in history
    assert "to every node" in history
