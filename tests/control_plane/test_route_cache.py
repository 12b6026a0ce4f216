"""A route's response-cache TTL (docs/cache.md): set through the REST API (validated: a
clear 400 and nothing changed for a value out of range), published in the snapshot the data
planes get, and kept by configuration documents."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from control_plane.catalog.models import CACHE_TTL_MAX_S, Route
from control_plane.config.document import DocumentError, from_yaml, to_yaml
from control_plane.config.services import export_yaml, import_document
from control_plane.fleet import selectors
from control_plane.fleet.models import PolicySnapshot
from control_plane.fleet.snapshot_builder import build_policy
from shared.pb import snapshot_pb2
from tests.control_plane import factories
from tests.control_plane.test_api import assert_error

pytestmark = pytest.mark.django_db


def route_body(rows: dict[str, Any], **fields: object) -> dict[str, Any]:
    return {
        "tenant": str(rows["tenant"].id),
        "name": "cached",
        "targets": [{"model": str(rows["model"].id), "credential": str(rows["credential"].id)}],
        **fields,
    }


def test_a_route_caches_only_when_given_a_ttl(api: APIClient) -> None:
    rows = factories.stack()
    created = api.post("/api/v1/routes/", route_body(rows), format="json")
    assert created.status_code == 201, created.content
    assert created.json()["cache_ttl_s"] == 0
    route_id = created.json()["id"]
    changed = api.patch(f"/api/v1/routes/{route_id}/", {"cache_ttl_s": 300}, format="json")
    assert changed.status_code == 200, changed.content
    assert Route.objects.get(id=route_id).cache_ttl_s == 300


@pytest.mark.parametrize("ttl", [-1, CACHE_TTL_MAX_S + 1, "soon"])
def test_a_ttl_out_of_range_is_refused_and_changes_nothing(api: APIClient, ttl: object) -> None:
    rows = factories.stack()
    route: Route = rows["route"]  # type: ignore[assignment]
    before = Route.objects.count()
    refused = api.post("/api/v1/routes/", route_body(rows, cache_ttl_s=ttl), format="json")
    error = assert_error(refused, 400, "invalid_request")
    assert "cache_ttl_s" in str(error["details"])
    assert Route.objects.count() == before
    patched = api.patch(f"/api/v1/routes/{route.id}/", {"cache_ttl_s": ttl}, format="json")
    assert_error(patched, 400, "invalid_request")
    assert Route.objects.get(id=route.id).cache_ttl_s == 0


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
def test_the_ttl_is_published_to_the_data_planes(api: APIClient) -> None:
    rows = factories.stack()
    route: Route = rows["route"]  # type: ignore[assignment]
    response = api.patch(f"/api/v1/routes/{route.id}/", {"cache_ttl_s": 120}, format="json")
    assert response.status_code == 200, response.content
    latest = PolicySnapshot.objects.order_by("-version").first()
    assert latest is not None
    snapshot = snapshot_pb2.Snapshot.FromString(bytes(latest.payload))
    assert {r.id: r.cache_ttl_s for r in snapshot.policy.routes} == {str(route.id): 120}
    rebuilt = build_policy(selectors.policy_rows())
    assert [r.cache_ttl_s for r in rebuilt.routes] == [120]


def test_configuration_documents_carry_the_ttl() -> None:
    rows = factories.stack()
    route: Route = rows["route"]  # type: ignore[assignment]
    slug = route.tenant.slug
    doc = from_yaml(export_yaml(slug))
    [exported] = doc["tenants"][0]["routes"]
    assert exported["cache_ttl_s"] == 0
    exported["cache_ttl_s"] = 600
    result = import_document(doc, tenant=slug)
    assert [c.describe() for c in result.changes] == [
        f"~ tenant {slug} / route {route.name} (cache_ttl_s: 0 -> 600)"
    ]
    assert Route.objects.get(id=route.id).cache_ttl_s == 600
    exported["cache_ttl_s"] = -5
    with pytest.raises(DocumentError):
        import_document(from_yaml(to_yaml(doc)), tenant=slug)
