"""The REST API: one error shape, secrets never shown back, validation before any write,
and every write publishing a snapshot."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from control_plane.catalog.models import ProviderCredential, Route
from control_plane.fleet.models import PolicySnapshot
from control_plane.keys.models import VirtualKey
from shared.crypto import hash_key
from tests.control_plane import factories

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    "tenants",
    "providers",
    "credentials",
    "models",
    "routes",
    "keys",
    "usage",
    "nodes",
    "snapshots",
    "guardrails",
]


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_anonymous_users_are_refused_and_users_without_a_role_see_nothing(endpoint: str) -> None:
    factories.stack()
    assert_error(APIClient().get(f"/api/v1/{endpoint}/"), 401, "not_authenticated")
    user = User.objects.create_user("nobody", password="pw-nobody-12345")
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(f"/api/v1/{endpoint}/")
    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_lists_are_paginated(api: APIClient, endpoint: str) -> None:
    factories.stack()
    body = api.get(f"/api/v1/{endpoint}/?limit=1").json()
    assert {"count", "next", "previous", "results"} <= set(body)
    assert len(body["results"]) <= 1


def test_validation_errors_name_the_fields(api: APIClient) -> None:
    error = assert_error(
        api.post("/api/v1/tenants/", {"slug": "not a slug!"}, format="json"), 400, "invalid_request"
    )
    assert "slug" in error["details"]
    assert "name" in error["details"]
    assert_error(api.get("/api/v1/tenants/00000000-0000-0000-0000-000000000000/"), 404, "not_found")
    assert_error(api.get("/api/v1/usage/?key=not-a-uuid"), 400, "invalid_request")
    assert_error(
        api.delete("/api/v1/keys/00000000-0000-0000-0000-000000000000/"), 405, "method_not_allowed"
    )
    response = api.post("/api/v1/tenants/", data="{not json", content_type="application/json")
    assert_error(response, 400, "invalid_request")


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
def test_credential_secret_is_write_only(api: APIClient) -> None:
    t, p = factories.tenant(), factories.provider()
    body = {
        "tenant": str(t.id),
        "provider": str(p.id),
        "name": "main",
        "secret": "sk-live-abcdefghijklmnop",
    }
    created = api.post("/api/v1/credentials/", body, format="json")
    assert created.status_code == 201, created.content
    assert "secret" not in created.json()
    assert created.json()["secret_hint"] == "sk-live…mnop"
    listed = api.get("/api/v1/credentials/").content
    assert b"abcdefghijklmnop" not in listed
    stored = ProviderCredential.objects.get()
    assert b"abcdefghijklmnop" not in bytes(stored.encrypted_secret)
    assert PolicySnapshot.objects.exists(), "the write published a snapshot"


def test_key_secret_is_shown_once_and_stored_as_hash(api: APIClient) -> None:
    rows = factories.stack()
    body = {"tenant": str(rows["tenant"].id), "name": "ci", "routes": [str(rows["route"].id)]}  # type: ignore[attr-defined]
    created = api.post("/api/v1/keys/", body, format="json")
    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("sk-asc-")
    key = VirtualKey.objects.get(id=created.json()["id"])
    assert key.key_hash == hash_key(secret)
    again = api.get(f"/api/v1/keys/{key.id}/").json()
    assert "secret" not in again
    assert secret.encode() not in api.get("/api/v1/keys/").content


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
def test_route_refuses_another_tenants_credential_and_changes_nothing(api: APIClient) -> None:
    mine, theirs = factories.stack("mine"), factories.stack("theirs")
    before = (Route.objects.count(), PolicySnapshot.objects.count())
    body = {
        "tenant": str(mine["tenant"].id),  # type: ignore[attr-defined]
        "name": "stolen",
        "targets": [{"model": str(theirs["model"].id), "credential": str(theirs["credential"].id)}],  # type: ignore[attr-defined]
    }
    error = assert_error(api.post("/api/v1/routes/", body, format="json"), 400, "invalid_request")
    assert "another tenant" in str(error["details"])
    assert (Route.objects.count(), PolicySnapshot.objects.count()) == before


def test_key_refuses_another_tenants_route(api: APIClient) -> None:
    mine, theirs = factories.stack("mine"), factories.stack("theirs")
    body = {"tenant": str(mine["tenant"].id), "name": "x", "routes": [str(theirs["route"].id)]}  # type: ignore[attr-defined]
    assert_error(api.post("/api/v1/keys/", body, format="json"), 400, "invalid_request")
    assert not VirtualKey.objects.filter(name="x").exists()


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
def test_route_with_targets_round_trips_and_publishes(api: APIClient) -> None:
    rows = factories.stack()
    before = PolicySnapshot.objects.count()
    body = {
        "tenant": str(rows["tenant"].id),  # type: ignore[attr-defined]
        "name": "two-targets",
        "targets": [
            {
                "model": str(rows["model"].id),
                "credential": str(rows["credential"].id),
                "priority": 1,
                "weight": 3,
            },  # type: ignore[attr-defined]
            {
                "model": str(rows["model"].id),
                "credential": str(rows["credential"].id),
                "priority": 0,
            },  # type: ignore[attr-defined]
        ],
    }
    created = api.post("/api/v1/routes/", body, format="json")
    assert created.status_code == 201, created.content
    targets = created.json()["targets"]
    assert [(t["priority"], t["weight"]) for t in targets] == [(0, 1), (1, 3)]
    assert PolicySnapshot.objects.count() == before + 1
    duplicate = api.post("/api/v1/routes/", body, format="json")
    assert_error(duplicate, 400, "invalid_request")


@pytest.mark.django_db(transaction=True)  # publishing runs on commit
def test_revoke_is_idempotent_and_publishes(api: APIClient) -> None:
    rows = factories.stack()
    key_id = rows["key"].id  # type: ignore[attr-defined]
    first = api.post(f"/api/v1/keys/{key_id}/revoke/")
    assert first.status_code == 200
    assert first.json()["revoked"] is True
    version = PolicySnapshot.objects.order_by("-version").first()
    again = api.post(f"/api/v1/keys/{key_id}/revoke/")
    assert again.status_code == 200
    assert PolicySnapshot.objects.order_by("-version").first() == version


def test_openapi_schema_is_served(api: APIClient) -> None:
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert b"/api/v1/routes/" in response.content


def test_the_openapi_schema_validates_without_warnings(tmp_path: Any) -> None:
    from django.core.management import call_command

    out = tmp_path / "schema.yaml"
    # --validate checks the schema against the OpenAPI 3 specification; --fail-on-warn turns
    # any endpoint drf-spectacular could not describe into a failure.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/v1/config/import/:" in out.read_text()
