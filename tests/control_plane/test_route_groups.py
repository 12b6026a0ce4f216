"""Model access groups: a key may use its own routes, its groups' and its project's groups',
resolved into the key's routes in the snapshot; never a route of another tenant."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from control_plane.catalog.models import RouteGroup
from control_plane.fleet import selectors
from control_plane.fleet.snapshot_builder import build_policy
from control_plane.keys import services as keys
from control_plane.tenancy.models import Project
from shared.consistency import problems
from tests.control_plane import factories
from tests.control_plane.test_api import assert_error

pytestmark = pytest.mark.django_db


def granted(key_id: object) -> set[str]:
    policy = build_policy(selectors.policy_rows())
    assert problems(policy) == []
    (key,) = [k for k in policy.keys if k.id == str(key_id)]
    return set(key.route_ids)


def test_a_key_gets_its_groups_and_its_projects_groups_routes() -> None:
    a = factories.stack("tenant-a")
    t, m, c = a["tenant"], a["model"], a["credential"]
    own, via_key, via_project = (factories.route(t, m, c, n) for n in ("own", "g1", "g2"))
    project = Project.objects.create(tenant=t, name="search")
    g1 = RouteGroup.objects.create(tenant=t, name="g1")
    g1.routes.set([via_key])
    g2 = RouteGroup.objects.create(tenant=t, name="g2")
    g2.routes.set([via_project])
    g2.projects.set([project])
    key, _ = keys.create_key(t, "k", [own], actor=None, project=project, route_groups=[g1])
    assert granted(key.pk) == {str(own.pk), str(via_key.pk), str(via_project.pk)}

    other, _ = keys.create_key(t, "plain", [own], actor=None)
    assert granted(other.pk) == {str(own.pk)}, "groups reach only the keys granted them"


def test_groups_of_another_tenant_are_refused(api: APIClient) -> None:
    a, b = factories.stack("tenant-a"), factories.stack("tenant-b")
    foreign = RouteGroup.objects.create(tenant=b["tenant"], name="theirs")
    foreign.routes.set([b["route"]])
    response = api.post(
        "/api/v1/keys/",
        {
            "tenant": str(a["tenant"].pk),
            "name": "k",
            "routes": [],
            "route_groups": [str(foreign.pk)],
        },
        format="json",
    )
    assert_error(response, 400, "invalid_request")
    response = api.post(
        "/api/v1/route-groups/",
        {"tenant": str(a["tenant"].pk), "name": "mixed", "routes": [str(b["route"].pk)]},
        format="json",
    )
    assert_error(response, 400, "invalid_request")
    assert not RouteGroup.objects.filter(name="mixed").exists()
