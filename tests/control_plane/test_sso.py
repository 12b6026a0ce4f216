"""Single sign-on against a real (fake) OpenID Connect provider on port 0: the authorization
code flow logs people into the admin and the API with the roles their groups map to; every
forged, replayed or misdirected answer is refused; local login stays for break-glass."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from control_plane.sso.models import OidcIdentity, SsoGroup
from control_plane.tenancy.models import Membership, Tenant
from tests.control_plane import factories
from tests.control_plane.fake_oidc import CLIENT_ID, CLIENT_SECRET, FakeOidc, new_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def idp(settings: Any) -> Iterator[FakeOidc]:
    cache.clear()
    with FakeOidc() as fake:
        settings.ASC_OIDC_ISSUER = fake.issuer
        settings.ASC_OIDC_CLIENT_ID = CLIENT_ID
        settings.ASC_OIDC_CLIENT_SECRET = CLIENT_SECRET
        settings.ASC_OIDC_ADMIN_GROUPS = "platform-team"
        yield fake
    cache.clear()


@pytest.fixture
def tenants() -> dict[str, Tenant]:
    a, b = factories.stack("tenant-a"), factories.stack("tenant-b")
    SsoGroup.objects.create(tenant=a["tenant"], group="a-admins", role="tenant_admin")
    SsoGroup.objects.create(tenant=a["tenant"], group="a-devs", role="developer")
    SsoGroup.objects.create(tenant=b["tenant"], group="b-auditors", role="auditor")
    return {"a": a["tenant"], "b": b["tenant"]}  # type: ignore[dict-item]


def follow_idp(location: str) -> str:
    """Ask the identity provider's authorization endpoint, as the browser would; return where
    it sends the browser back to (path and query on the control plane)."""
    parts = urllib.parse.urlsplit(location)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    conn.request("GET", f"{parts.path}?{parts.query}")
    response = conn.getresponse()
    assert response.status == 302, response.read()
    back = urllib.parse.urlsplit(response.getheader("Location") or "")
    conn.close()
    return f"{back.path}?{back.query}"


def sso_login(client: Client, next_url: str = "/admin/") -> Any:
    started = client.get("/sso/login/", {"next": next_url})
    assert started.status_code == 302, started.content
    return client.get(follow_idp(started["Location"]))


def test_code_flow_logs_in_with_the_roles_the_groups_map_to(
    idp: FakeOidc, tenants: dict[str, Tenant]
) -> None:
    idp.user["groups"] = ["a-devs", "a-admins", "b-auditors", "unrelated"]
    client = Client()
    response = sso_login(client, "/admin/asc_catalog/route/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/asc_catalog/route/"
    user = User.objects.get(oidc_identity__subject="u-1")
    assert (user.username, user.email, user.is_staff, user.is_superuser) == (
        "alice",
        "alice@example.com",
        True,
        False,
    )
    assert not user.has_usable_password(), "an SSO user has no local password"
    roles = {m.tenant.slug: (m.role, m.source) for m in Membership.objects.filter(user=user)}
    assert roles == {"tenant-a": ("tenant_admin", "sso"), "tenant-b": ("auditor", "sso")}
    page = client.get("/admin/asc_catalog/route/")
    assert page.status_code == 200
    assert "tenant-a" in page.content.decode()
    api = client.get("/api/v1/tenants/").json()  # the API takes the same session
    assert {t["slug"] for t in api["results"]} == {"tenant-a", "tenant-b"}
    token_request = idp.token_requests[0]
    assert token_request["code_verifier"], "PKCE"


def test_groups_are_read_again_at_each_login_and_local_roles_stay(
    idp: FakeOidc, tenants: dict[str, Tenant]
) -> None:
    idp.user["groups"] = ["a-admins", "b-auditors"]
    sso_login(Client())
    user = User.objects.get(oidc_identity__subject="u-1")
    c = factories.tenant("tenant-c")
    Membership.objects.create(user=user, tenant=c, role="auditor")  # granted by hand
    idp.user["groups"] = ["a-devs", "platform-team"]
    sso_login(Client())
    user.refresh_from_db()
    assert user.is_superuser, "the platform group makes a platform admin"
    roles = {m.tenant.slug: (m.role, m.source) for m in Membership.objects.filter(user=user)}
    assert roles == {"tenant-a": ("developer", "sso"), "tenant-c": ("auditor", "local")}
    idp.user["groups"] = ["a-devs"]
    sso_login(Client())
    user.refresh_from_db()
    assert not user.is_superuser, "leaving the platform group takes platform admin away"


def test_a_login_whose_groups_grant_nothing_is_refused(
    idp: FakeOidc, tenants: dict[str, Tenant]
) -> None:
    idp.user["groups"] = ["unrelated"]
    client = Client()
    response = sso_login(client)
    assert response.status_code == 403
    assert "none of your groups" in response.content.decode()
    assert not User.objects.filter(username="alice").exists()
    assert client.get("/admin/").status_code == 302, "not logged in"


def test_an_sso_login_never_takes_over_a_local_account(
    idp: FakeOidc, tenants: dict[str, Tenant]
) -> None:
    local = User.objects.create_superuser("alice", "alice@local", "break-glass-pw-1")
    idp.user["groups"] = ["a-devs"]
    sso_login(Client())
    sso_user = User.objects.get(oidc_identity__subject="u-1")
    assert sso_user.pk != local.pk
    assert sso_user.username.startswith("alice-")
    assert not sso_user.is_superuser
    local.refresh_from_db()
    assert local.check_password("break-glass-pw-1")


def test_local_login_stays_for_break_glass(idp: FakeOidc, tenants: dict[str, Tenant]) -> None:
    User.objects.create_superuser("root", "root@local", "break-glass-pw-1")
    client = Client()
    page = client.get("/admin/login/").content.decode()
    assert "Log in with single sign-on" in page
    assert 'name="password"' in page
    response = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "break-glass-pw-1"}
    )
    assert response.status_code == 302
    assert client.get("/admin/asc_fleet/dataplanenode/").status_code == 200


def test_a_deactivated_user_stays_out(idp: FakeOidc, tenants: dict[str, Tenant]) -> None:
    idp.user["groups"] = ["a-devs"]
    sso_login(Client())
    User.objects.filter(oidc_identity__subject="u-1").update(is_active=False)
    response = sso_login(Client())
    assert response.status_code == 403
    assert "deactivated" in response.content.decode()


@pytest.mark.parametrize(
    "tamper",
    ["foreign key", "wrong audience", "expired", "other issuer", "wrong nonce", "no subject"],
)
def test_a_bad_id_token_is_refused(idp: FakeOidc, tenants: dict[str, Tenant], tamper: str) -> None:
    idp.user["groups"] = ["a-admins"]
    if tamper == "foreign key":
        idp.signing_key = new_key()
    else:
        idp.claims = {
            "wrong audience": {"aud": "another-client"},
            "expired": {"exp": 1_000_000, "iat": 999_000},
            "other issuer": {"iss": "http://evil.example"},
            "wrong nonce": {"nonce": "replayed"},
            "no subject": {"sub": None},
        }[tamper]
    client = Client()
    response = sso_login(client)
    assert response.status_code == 403, response.content
    assert not OidcIdentity.objects.exists()
    assert client.get("/admin/").status_code == 302


def test_forged_state_and_replayed_codes_are_refused(
    idp: FakeOidc, tenants: dict[str, Tenant]
) -> None:
    idp.user["groups"] = ["a-admins"]
    client = Client()
    started = client.get("/sso/login/")
    back = follow_idp(started["Location"])
    forged = back.replace("state=", "state=x")
    assert client.get(forged).status_code == 400
    other = Client()  # another browser: the state is not in its session
    assert other.get(back).status_code == 400
    assert client.get(back).status_code == 302, "the genuine answer still works once"
    assert client.get(back).status_code == 400, "and only once"
    assert OidcIdentity.objects.count() == 1


def test_login_redirects_only_to_this_site(idp: FakeOidc, tenants: dict[str, Tenant]) -> None:
    idp.user["groups"] = ["a-admins"]
    response = sso_login(Client(), "https://evil.example/phish")
    assert response["Location"] == "/admin/"


def test_the_api_takes_an_identity_provider_token(
    idp: FakeOidc, tenants: dict[str, Tenant]
) -> None:
    idp.user["groups"] = ["a-devs"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {idp.id_token(idp.user, None)}")
    keys = client.get("/api/v1/keys/")
    assert keys.status_code == 200
    assert keys.json()["results"] == [], "a developer sees only their own keys"
    created = client.post(
        "/api/v1/keys/",
        {"tenant": str(tenants["a"].id), "name": "mine", "routes": []},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert client.get("/api/v1/keys/").json()["count"] == 1
    assert client.get(f"/api/v1/tenants/{tenants['b'].id}/").status_code == 404

    idp.signing_key = new_key()
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION=f"Bearer {idp.id_token(idp.user, None)}")
    response = forged.get("/api/v1/keys/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_symmetric_and_unsigned_tokens_are_refused(
    idp: FakeOidc, tenants: dict[str, Tenant], alg: str
) -> None:
    import jwt

    idp.user["groups"] = ["a-admins"]
    claims = {"iss": idp.issuer, "aud": CLIENT_ID, "sub": "u-1", "iat": 1, "exp": 2**40}
    public_pem = idp.jwks()["keys"][0]["n"]  # the public key as an HMAC secret: key confusion
    token = jwt.encode(claims, public_pem if alg == "HS256" else None, algorithm=alg)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/tenants/").status_code == 401
    assert not OidcIdentity.objects.exists()


def test_without_sso_configured_there_is_no_sso(tenants: dict[str, Tenant]) -> None:
    assert Client().get("/sso/login/").status_code == 404
    assert "single sign-on" not in Client().get("/admin/login/").content.decode()
