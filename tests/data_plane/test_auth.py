"""authenticate and authorize: pure functions of (compiled policy, request data, now) that
answer with a Principal / RouteEntry or the OpenAI-format ApiError to send back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane import errors
from data_plane.errors import ApiError
from data_plane.policy.auth import Principal, allowed_routes, authenticate, authorize
from data_plane.policy.compiled import CompiledPolicy, RouteEntry, compile_snapshot
from tests.data_plane import snapshots
from tests.data_plane.snapshots import (
    ACME_EXPIRED_KEY,
    ACME_KEY,
    BETA_KEY,
    BETA_UPSTREAM,
    EXPIRES_AT,
    GONE_KEY,
)

NOW = float(EXPIRES_AT - 3600)


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return compile_snapshot(snapshots.two_tenants().snapshot(), snapshots.keyring())


def principal_of(policy: CompiledPolicy, secret: str, now: float = NOW) -> Principal:
    found = authenticate(policy, f"Bearer {secret}", now)
    assert isinstance(found, Principal), found
    return found


def assert_refused(result: object, status: int, code: str) -> ApiError:
    assert isinstance(result, ApiError), result
    assert (result.status, result.code) == (status, code)
    body = result.body()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return result


def test_a_valid_key_authenticates_as_its_tenant(policy: CompiledPolicy) -> None:
    principal = principal_of(policy, ACME_KEY)
    assert (principal.tenant.id, principal.key.id) == ("t-acme", "k-acme")
    assert principal.subject == ""


@pytest.mark.parametrize(
    "header",
    [f"bearer {ACME_KEY}", f"BEARER {ACME_KEY}", f"Bearer   {ACME_KEY}  "],
)
def test_the_scheme_is_case_insensitive_and_spaces_are_trimmed(
    policy: CompiledPolicy, header: str
) -> None:
    found = authenticate(policy, header, NOW)
    assert isinstance(found, Principal)
    assert found.key.id == "k-acme"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        f"Basic {ACME_KEY}",
        ACME_KEY,
        f"Token {ACME_KEY}",
    ],
)
def test_a_missing_or_malformed_header_is_401_missing_api_key(
    policy: CompiledPolicy, header: str | None
) -> None:
    error = assert_refused(authenticate(policy, header, NOW), 401, errors.MISSING_API_KEY)
    assert error.type == "authentication_error"


@pytest.mark.parametrize("secret", ["sk-asc-unknown", ACME_KEY + "x", ACME_KEY.upper()])
def test_an_unknown_key_is_401_invalid_api_key(policy: CompiledPolicy, secret: str) -> None:
    assert_refused(authenticate(policy, f"Bearer {secret}", NOW), 401, errors.INVALID_API_KEY)


def test_a_key_expires_at_its_expiry_second(policy: CompiledPolicy) -> None:
    assert principal_of(policy, ACME_EXPIRED_KEY, EXPIRES_AT - 0.001).key.id == "k-acme-expired"
    for now in (EXPIRES_AT, EXPIRES_AT + 86_400.0):
        found = authenticate(policy, f"Bearer {ACME_EXPIRED_KEY}", now)
        assert_refused(found, 401, errors.EXPIRED_API_KEY)


def test_a_key_without_expiry_never_expires(policy: CompiledPolicy) -> None:
    assert principal_of(policy, ACME_KEY, 4_000_000_000.0).key.id == "k-acme"


def test_a_revoked_key_is_absent_from_the_next_snapshot_and_refused() -> None:
    builder = snapshots.two_tenants()
    del builder.policy.keys[2]
    assert {k.id for k in builder.policy.keys} == {"k-acme", "k-acme-expired", "k-gone"}
    policy = compile_snapshot(builder.snapshot(version=2), snapshots.keyring())
    assert_refused(authenticate(policy, f"Bearer {BETA_KEY}", NOW), 401, errors.INVALID_API_KEY)
    assert principal_of(policy, ACME_KEY).key.id == "k-acme", "other keys are unaffected"


def test_a_key_of_an_inactive_tenant_is_403_tenant_inactive(policy: CompiledPolicy) -> None:
    found = authenticate(policy, f"Bearer {GONE_KEY}", NOW)
    assert_refused(found, 403, errors.TENANT_INACTIVE)


def test_a_granted_route_is_authorized(policy: CompiledPolicy) -> None:
    route = authorize(policy, principal_of(policy, ACME_KEY), "chat")
    assert isinstance(route, RouteEntry)
    assert (route.id, route.tenant_id) == ("r-acme-chat", "t-acme")


def test_a_route_of_the_tenant_not_granted_to_the_key_is_403(policy: CompiledPolicy) -> None:
    found = authorize(policy, principal_of(policy, ACME_KEY), "extra")
    error = assert_refused(found, 403, errors.MODEL_NOT_ALLOWED)
    assert (error.type, error.param) == ("permission_error", "model")


@pytest.mark.parametrize("model", ["nope", "", "CHAT", "r-acme-chat"])
def test_an_unknown_route_is_404(policy: CompiledPolicy, model: str) -> None:
    found = authorize(policy, principal_of(policy, ACME_KEY), model)
    error = assert_refused(found, 404, errors.MODEL_NOT_FOUND)
    assert error.param == "model"


def test_the_same_route_name_resolves_within_the_keys_tenant(policy: CompiledPolicy) -> None:
    route = authorize(policy, principal_of(policy, BETA_KEY), "chat")
    assert isinstance(route, RouteEntry)
    assert route.id == "r-beta-chat"
    assert [t.api_key for t in route.targets] == [BETA_UPSTREAM]


def test_another_tenants_route_name_is_404_not_403(policy: CompiledPolicy) -> None:
    """beta has no "extra"; acme's "extra" must not even be acknowledged to exist."""
    found = authorize(policy, principal_of(policy, BETA_KEY), "extra")
    assert_refused(found, 404, errors.MODEL_NOT_FOUND)


def test_allowed_routes_are_the_keys_own_sorted_by_name() -> None:
    builder = snapshots.two_tenants()
    builder.key("k-acme-all", "t-acme", "sk-asc-acme-all", ["r-acme-extra", "r-acme-chat"])
    policy = compile_snapshot(builder.snapshot(), snapshots.keyring())
    routes = allowed_routes(policy, principal_of(policy, "sk-asc-acme-all"))
    assert [(r.name, r.tenant_id) for r in routes] == [("chat", "t-acme"), ("extra", "t-acme")]
    beta = allowed_routes(policy, principal_of(policy, BETA_KEY))
    assert [r.id for r in beta] == ["r-beta-chat"]


_TWO_TENANTS = compile_snapshot(snapshots.two_tenants().snapshot(), snapshots.keyring())


@settings(max_examples=300, deadline=None)
@given(header=st.one_of(st.none(), st.text(max_size=80)))
def test_any_header_is_a_principal_only_for_a_known_secret(header: str | None) -> None:
    found = authenticate(_TWO_TENANTS, header, NOW)
    if isinstance(found, Principal):
        assert header is not None
        assert header.split(None, 1)[1].strip() in {ACME_KEY, BETA_KEY}
    else:
        assert found.status in (401, 403)


# Cross-tenant isolation: tenants drawing route names from one small pool, so the same public
# name exists in several tenants, and keys granted random subsets of their own tenant's routes.
ROUTE_NAMES = ["chat", "gpt-4o", "embed", "fast"]
tenant_specs = st.tuples(
    st.sets(st.sampled_from(ROUTE_NAMES)),  # the tenant's routes
    st.lists(st.sets(st.sampled_from(ROUTE_NAMES)), max_size=3),  # its keys' grants
    st.booleans(),  # active
)


def _isolation_policy(specs: list[tuple[set[str], list[set[str]], bool]]) -> CompiledPolicy:
    builder = snapshots.PolicyBuilder().provider("p").model("m", "p")
    for t, (route_names, grants, active) in enumerate(specs):
        builder.tenant(f"t{t}", active=active).credential(f"c{t}", f"t{t}", "p", f"up-{t}")
        for name in sorted(route_names):
            builder.route(f"r{t}-{name}", f"t{t}", name, [("m", f"c{t}")])
        for k, granted in enumerate(grants):
            route_ids = [f"r{t}-{name}" for name in granted & route_names]
            builder.key(f"k{t}-{k}", f"t{t}", f"sk-{t}-{k}", route_ids)
    return compile_snapshot(builder.snapshot(), snapshots.keyring())


@settings(max_examples=200, deadline=None)
@given(specs=st.lists(tenant_specs, min_size=2, max_size=4))
def test_a_key_never_reaches_another_tenants_route(
    specs: list[tuple[set[str], list[set[str]], bool]],
) -> None:
    policy = _isolation_policy(specs)
    for t, (route_names, grants, active) in enumerate(specs):
        for k, granted in enumerate(grants):
            found = authenticate(policy, f"Bearer sk-{t}-{k}", NOW)
            if not active:
                assert_refused(found, 403, errors.TENANT_INACTIVE)
                continue
            assert isinstance(found, Principal)
            assert (found.tenant.id, found.key.id) == (f"t{t}", f"k{t}-{k}")
            for route in allowed_routes(policy, found):
                assert route.tenant_id == f"t{t}"
            for name in [*ROUTE_NAMES, "unknown"]:
                result = authorize(policy, found, name)
                if isinstance(result, RouteEntry):
                    assert name in granted & route_names
                    assert (result.id, result.tenant_id) == (f"r{t}-{name}", f"t{t}")
                    assert [x.credential_id for x in result.targets] == [f"c{t}"]
                    assert [x.api_key for x in result.targets] == [f"up-{t}"]
                elif name in route_names:
                    assert_refused(result, 403, errors.MODEL_NOT_ALLOWED)
                    assert name not in granted
                else:
                    # Whether or not another tenant has a route of that name: 404.
                    assert_refused(result, 404, errors.MODEL_NOT_FOUND)
