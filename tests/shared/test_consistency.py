"""The one consistency check of a snapshot (``shared.consistency``) and the per-entity rules it
shares with the control plane's save-time validation (``shared.rules``): every kind of broken
snapshot is reported, a sound one gives no problem."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from shared import consistency, rules
from shared.pb import snapshot_pb2

JWKS = json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "n": "sXch", "e": "AQAB"}]})


def sound() -> snapshot_pb2.Policy:
    """Two tenants, each with a credential, a route, a key, a project, guardrails, limits of
    every scope and an identity provider; every reference resolves inside its tenant."""
    p = snapshot_pb2.Policy()
    p.providers.add(id="p1", name="openai", kind=snapshot_pb2.PROVIDER_KIND_OPENAI, enabled=True)
    p.providers.add(id="p2", name="mock", kind=snapshot_pb2.PROVIDER_KIND_MOCK, enabled=True)
    p.models.add(id="m1", provider_id="p1", provider_model="gpt-x", region="eu")
    p.models.add(id="m2", provider_id="p2", provider_model="mock-1", region="eu")
    for t in ("a", "b"):
        p.tenants.add(id=f"t-{t}", slug=t, active=True)
        p.credentials.add(id=f"c-{t}", tenant_id=f"t-{t}", provider_id="p1")
        p.credentials.add(id=f"c-{t}-mock", tenant_id=f"t-{t}", provider_id="p2")
        route = p.routes.add(id=f"r-{t}", tenant_id=f"t-{t}", name="chat")
        route.targets.add(model_id="m1", credential_id=f"c-{t}", priority=0, weight=1)
        route.targets.add(model_id="m2", credential_id=f"c-{t}-mock", priority=1, weight=1)
        p.routes.add(id=f"r-{t}-2", tenant_id=f"t-{t}", name="extra")
        p.projects.add(id=f"pr-{t}", tenant_id=f"t-{t}", name="team")
        p.keys.add(
            id=f"k-{t}",
            tenant_id=f"t-{t}",
            name="app",
            key_hash=f"{t}" * 64,
            route_ids=[f"r-{t}", f"r-{t}-2"],
            project_id=f"pr-{t}",
        )
        g = p.guardrails.add(
            id=f"g-{t}",
            tenant_id=f"t-{t}",
            on_input=True,
            categories=["email", "payment_card"],
            actions={"payment_card": "block", "custom:project": "tag", "keyword:names": "redact"},
            default_action="redact",
        )
        g.custom_patterns.add(name="project", patterns=[r"PRJ-\d{4}"], max_len=8)
        g.keyword_lists.add(name="names", words=["bluebird"])
        p.guardrails.add(id=f"g-{t}-route", tenant_id=f"t-{t}", route_id=f"r-{t}")
        for scope, subject, kind, period in (
            (snapshot_pb2.LIMIT_SCOPE_TENANT, f"t-{t}", "budget", "month"),
            (snapshot_pb2.LIMIT_SCOPE_PROJECT, f"pr-{t}", "budget", "none"),
            (snapshot_pb2.LIMIT_SCOPE_KEY, f"k-{t}", "requests", "minute"),
            (snapshot_pb2.LIMIT_SCOPE_ROUTE, f"r-{t}", "tokens", "minute"),
        ):
            p.limits.add(
                id=f"l-{t}-{scope}",
                tenant_id=f"t-{t}",
                scope=scope,
                subject_id=subject,
                kind=rules.LIMIT_KINDS[kind],
                period=rules.LIMIT_PERIODS[period],
                time_zone="UTC",
                amount=1_000,
                hard=True,
            )
        idp = p.identity_providers.add(
            id=f"i-{t}",
            tenant_id=f"t-{t}",
            issuer=f"https://idp.{t}.example",
            audience="asc",
            jwks_json=JWKS,
            route_ids=[f"r-{t}"],
        )
        idp.role_routes.add(role="ml", route_ids=[f"r-{t}-2"])
    return p


def test_a_sound_snapshot_has_no_problem() -> None:
    assert consistency.problems(sound()) == []
    consistency.check(sound())  # does not raise


def test_an_empty_snapshot_is_consistent() -> None:
    assert consistency.problems(snapshot_pb2.Policy()) == []


KINDS = {
    "tenant": "tenants",
    "provider": "providers",
    "credential": "credentials",
    "model": "models",
    "route": "routes",
    "key": "keys",
    "guardrail": "guardrails",
    "project": "projects",
    "limit": "limits",
    "identity provider": "identity_providers",
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_duplicate_id_of_every_kind_is_reported(kind: str) -> None:
    policy = sound()
    items = getattr(policy, KINDS[kind])
    items.add().CopyFrom(items[0])
    assert f"duplicate {kind} id {items[0].id}" in consistency.problems(policy)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_id_of_every_kind_is_reported(kind: str) -> None:
    policy = sound()
    getattr(policy, KINDS[kind])[-1].id = ""
    assert f"a {kind} has an empty id" in consistency.problems(policy)


Breakage = Callable[[snapshot_pb2.Policy], object]


def _target(p: snapshot_pb2.Policy) -> snapshot_pb2.RouteTarget:
    return p.routes[0].targets[0]


def _key(p: snapshot_pb2.Policy) -> snapshot_pb2.VirtualKey:
    return p.keys[0]  # k-a


def _guard(p: snapshot_pb2.Policy) -> snapshot_pb2.GuardrailPolicy:
    return p.guardrails[0]  # g-a, tenant-wide


def _limit(p: snapshot_pb2.Policy, scope: int = snapshot_pb2.LIMIT_SCOPE_KEY) -> snapshot_pb2.Limit:
    return next(lim for lim in p.limits if lim.tenant_id == "t-a" and lim.scope == scope)


def _idp(p: snapshot_pb2.Policy) -> snapshot_pb2.IdentityProvider:
    return p.identity_providers[0]


def _set[T](value: T, **fields: object) -> T:
    for name, field_value in fields.items():
        setattr(value, name, field_value)
    return value


BROKEN: dict[str, tuple[Breakage, str]] = {
    # references between the catalog's entities
    "model of an unknown provider": (
        lambda p: _set(p.models[0], provider_id="p9"),
        "model m1 names unknown provider p9",
    ),
    "credential of an unknown tenant": (
        lambda p: _set(p.credentials[0], tenant_id="t-z"),
        "credential c-a names unknown tenant t-z",
    ),
    "credential of an unknown provider": (
        lambda p: _set(p.credentials[0], provider_id="p9"),
        "credential c-a names unknown provider p9",
    ),
    "route of an unknown tenant": (
        lambda p: _set(p.routes[0], tenant_id="t-z"),
        "route r-a names unknown tenant t-z",
    ),
    "route without a name": (lambda p: _set(p.routes[1], name=""), "route r-a-2 has no name"),
    "route name twice in a tenant": (
        lambda p: _set(p.routes[1], name="chat"),
        "route name chat is used twice in tenant t-a",
    ),
    "dangling target model": (
        lambda p: _set(_target(p), model_id="m9"),
        "route r-a names unknown model m9",
    ),
    "dangling target credential": (
        lambda p: _set(_target(p), credential_id="c9"),
        "route r-a names unknown credential c9",
    ),
    "target credential of another tenant": (
        lambda p: _set(_target(p), credential_id="c-b"),
        "route r-a uses credential c-b of another tenant",
    ),
    "target credential of another provider": (
        lambda p: _set(_target(p), credential_id="c-a-mock"),
        "route r-a: credential c-a-mock is for another provider",
    ),
    # keys
    "key of an unknown tenant": (
        lambda p: _set(_key(p), tenant_id="t-z"),
        "key k-a names unknown tenant t-z",
    ),
    "key without a hash": (lambda p: _set(_key(p), key_hash=""), "key k-a has no hash"),
    "key repeating another key's hash, in another case": (
        lambda p: _set(p.keys[1], key_hash=_key(p).key_hash.upper()),
        "key k-b repeats another key's hash",
    ),
    "key granted an unknown route": (
        lambda p: _key(p).route_ids.append("r-zz"),
        "key k-a names unknown route r-zz",
    ),
    "key granted a route of another tenant": (
        lambda p: _key(p).route_ids.append("r-b"),
        "key k-a names route chat of another tenant",
    ),
    "key in a project of another tenant": (
        lambda p: _set(_key(p), project_id="pr-b"),
        "key k-a names project pr-b of no such tenant",
    ),
    "key in an unknown project": (
        lambda p: _set(_key(p), project_id="pr-z"),
        "key k-a names project pr-z of no such tenant",
    ),
    # projects
    "project of an unknown tenant": (
        lambda p: _set(p.projects[0], tenant_id="t-z"),
        "project pr-a names unknown tenant t-z",
    ),
    # guardrails: where they apply
    "guardrail of an unknown tenant": (
        lambda p: _set(_guard(p), tenant_id="t-z"),
        "guardrail g-a names unknown tenant t-z",
    ),
    "guardrail of an unknown route": (
        lambda p: _set(_guard(p), route_id="r-zz"),
        "guardrail g-a names unknown route r-zz",
    ),
    "guardrail of a route of another tenant": (
        lambda p: _set(_guard(p), route_id="r-b-2"),
        "guardrail g-a names route extra of another tenant",
    ),
    "second guardrail policy for the same route": (
        lambda p: _set(_guard(p), route_id="r-a"),
        "a second policy for the same tenant or route",
    ),
    # guardrails: what they do
    "unknown category": (
        lambda p: _guard(p).categories.append("horoscope"),
        "guardrail g-a categories: unknown categories ['horoscope']",
    ),
    "unknown action": (
        lambda p: _guard(p).actions.__setitem__("email", "shred"),
        "guardrail g-a actions: unknown action 'shred' for 'email'",
    ),
    "action for an unknown category": (
        lambda p: _guard(p).actions.__setitem__("custom:nope", "block"),
        "guardrail g-a actions: action for unknown category 'custom:nope'",
    ),
    "unknown default action": (
        lambda p: _set(_guard(p), default_action="explode"),
        "guardrail g-a default_action: unknown action 'explode'",
    ),
    "custom regex that does not compile": (
        lambda p: _guard(p).custom_patterns[0].patterns.append("(unclosed"),
        "guardrail g-a custom_patterns: project: bad pattern '(unclosed'",
    ),
    "custom regex with a repeat count too large": (
        lambda p: _guard(p).custom_patterns[0].patterns.append("a{99999999999}"),
        "bad pattern 'a{99999999999}'",
    ),
    "custom regex list without patterns": (
        lambda p: _guard(p).custom_patterns[0].ClearField("patterns"),
        'project: "patterns" must be a non-empty list',
    ),
    "custom regex list with a bad name": (
        lambda p: _set(_guard(p).custom_patterns[0], name="bad name!"),
        "invalid list name 'bad name!'",
    ),
    "max_len too large": (
        lambda p: _set(_guard(p).custom_patterns[0], max_len=rules.MAX_MATCH_LEN + 1),
        f"project: max_len {rules.MAX_MATCH_LEN + 1} is out of range",
    ),
    "max_len as large as the snapshot holds": (
        lambda p: _set(_guard(p).custom_patterns[0], max_len=2**32 - 1),
        f"project: max_len {2**32 - 1} is out of range",
    ),
    "two custom regex lists of one name": (
        lambda p: _guard(p).custom_patterns.add(name="project", patterns=["x"]),
        "custom_patterns: names must be unique: ['project'] repeated",
    ),
    "empty keyword list": (
        lambda p: _guard(p).keyword_lists[0].ClearField("words"),
        'guardrail g-a keyword_lists: names: "words" must be a non-empty list',
    ),
    "blank keyword": (
        lambda p: _guard(p).keyword_lists[0].words.append("  "),
        'names: "words" must be a non-empty list of non-blank strings',
    ),
    "keyword too long": (
        lambda p: _guard(p).keyword_lists[0].words.append("x" * (rules.MAX_MATCH_LEN + 1)),
        f"names: words longer than {rules.MAX_MATCH_LEN} characters",
    ),
    # limits
    "limit of an unknown tenant": (
        lambda p: _set(_limit(p), tenant_id="t-z"),
        "limit l-a-3 names unknown tenant t-z",
    ),
    "limit on a key of another tenant": (
        lambda p: _set(_limit(p), subject_id="k-b"),
        "limit l-a-3 names k-b outside tenant t-a",
    ),
    "limit on a project of another tenant": (
        lambda p: _set(_limit(p, snapshot_pb2.LIMIT_SCOPE_PROJECT), subject_id="pr-b"),
        "limit l-a-2 names pr-b outside tenant t-a",
    ),
    "limit on a subject of another scope": (
        lambda p: _set(_limit(p), subject_id="r-a"),  # a route id, in a key-scoped limit
        "limit l-a-3 names r-a outside tenant t-a",
    ),
    "limit without a scope": (
        lambda p: _set(_limit(p), scope=snapshot_pb2.LIMIT_SCOPE_UNSPECIFIED),
        "limit l-a-3 has no valid scope",
    ),
    "limit without a kind": (
        lambda p: _set(_limit(p), kind=snapshot_pb2.LIMIT_KIND_UNSPECIFIED),
        "limit l-a-3 kind: unknown limit kind 0",
    ),
    "limit without a period": (
        lambda p: _set(_limit(p), period=snapshot_pb2.LIMIT_PERIOD_UNSPECIFIED),
        "limit l-a-3 period: unknown limit period 0",
    ),
    "negative amount": (
        lambda p: _set(_limit(p), amount=-1),
        "limit l-a-3 amount: the amount is out of range",
    ),
    # identity providers
    "identity provider of an unknown tenant": (
        lambda p: _set(_idp(p), tenant_id="t-z"),
        "identity provider i-a names unknown tenant t-z",
    ),
    "identity provider without an issuer": (
        lambda p: _set(_idp(p), issuer=""),
        "identity provider i-a has no issuer",
    ),
    "two identity providers of one issuer": (
        lambda p: _set(p.identity_providers[1], issuer=_idp(p).issuer),
        "identity provider i-b repeats issuer https://idp.a.example",
    ),
    "identity provider granting a route of another tenant": (
        lambda p: _idp(p).route_ids.append("r-b"),
        "identity provider i-a grants route r-b of no such tenant",
    ),
    "identity provider granting by role an unknown route": (
        lambda p: _idp(p).role_routes[0].route_ids.append("r-zz"),
        "identity provider i-a grants route r-zz of no such tenant",
    ),
    "key set that is not JSON": (
        lambda p: _set(_idp(p), jwks_json="{keys: nope"),
        "identity provider i-a jwks: the key set is not JSON",
    ),
    "key set without keys": (
        lambda p: _set(_idp(p), jwks_json='{"keys": []}'),
        "identity provider i-a jwks: not a JSON Web Key Set",
    ),
    "key set without a signing key": (
        lambda p: _set(_idp(p), jwks_json='{"keys": [{"kty": "RSA", "use": "enc"}]}'),
        "identity provider i-a jwks: the key set holds no signing key",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_every_kind_of_broken_snapshot_is_reported(case: str) -> None:
    policy = sound()
    breakage, expected = BROKEN[case]
    breakage(policy)
    found = consistency.problems(policy)
    assert any(expected in problem for problem in found), (expected, found)
    with pytest.raises(consistency.InconsistentSnapshot) as raised:
        consistency.check(policy)
    assert raised.value.problems == found


def test_max_len_unset_in_the_snapshot_means_the_default() -> None:
    """Zero is proto3's "not set": the data plane takes the default (64) for it."""
    policy = sound()
    _guard(policy).custom_patterns[0].max_len = 0
    assert consistency.problems(policy) == []


@pytest.mark.parametrize("max_len", [0, -1, rules.MAX_MATCH_LEN + 1, 2**40])
def test_max_len_out_of_range_is_a_problem_of_the_pattern_list(max_len: int) -> None:
    problems = rules.pattern_list_problems(rules.PatternList("p", ["x"], max_len=max_len))
    assert problems == [
        f"p: max_len {max_len} is out of range: a whole number from 1 to {rules.MAX_MATCH_LEN}"
    ]


@pytest.mark.parametrize("max_len", [1, rules.DEFAULT_MAX_LEN, rules.MAX_MATCH_LEN])
def test_max_len_in_range_is_accepted(max_len: int) -> None:
    assert rules.pattern_list_problems(rules.PatternList("p", ["x"], max_len=max_len)) == []


def test_patterns_compile_as_the_data_plane_compiles_them_with_ignore_case() -> None:
    # An inline global flag after the start is an error in Python 3.11+, whatever the flags.
    bad = rules.PatternList("p", ["a(?i)b"], ignore_case=True)
    assert "bad pattern" in rules.pattern_list_problems(bad)[0]


def test_guardrail_problems_are_by_field() -> None:
    found = rules.guardrail_problems(
        ["email", "horoscope"],
        {"email": "shred"},
        "explode",
        [rules.PatternList("p", ["("], max_len=0)],
        [rules.WordList("w", [])],
    )
    assert set(found) == {
        "categories",
        "actions",
        "default_action",
        "custom_patterns",
        "keyword_lists",
    }
    assert len(found["custom_patterns"]) == 2  # the max_len and the pattern


def test_a_budget_too_large_for_the_snapshot_is_out_of_range() -> None:
    budget, month = rules.LIMIT_KINDS["budget"], rules.LIMIT_PERIODS["month"]
    assert rules.limit_problems(budget, month, rules.MAX_LIMIT_UNITS) == {}
    found = rules.limit_problems(budget, month, rules.MAX_LIMIT_UNITS + 1)
    assert found == {"amount": ["the amount is out of range: from 0 to 9223372036 USD"]}


def test_every_problem_is_reported_not_just_the_first() -> None:
    policy = sound()
    _key(policy).tenant_id = "t-z"
    _target(policy).model_id = "m9"
    _guard(policy).custom_patterns[0].max_len = 5000
    found = consistency.problems(policy)
    assert len(found) >= 3
    for expected in ("key k-a names unknown tenant", "unknown model m9", "max_len 5000"):
        assert any(expected in problem for problem in found), (expected, found)


def test_keys_sharing_a_bad_grant_are_each_reported() -> None:
    policy = sound()
    for n in range(3):
        policy.keys.add(id=f"k-x{n}", tenant_id="t-a", key_hash=f"{n:064x}", route_ids=["r-b"])
    found = consistency.problems(policy)
    for n in range(3):
        assert f"key k-x{n} names route chat of another tenant" in found


def test_the_exception_is_a_value_error_quoting_the_first_problems() -> None:
    policy = sound()
    for n in range(25):
        policy.keys.add(id=f"k-x{n}", tenant_id="t-z", key_hash=f"{n:064x}")
    with pytest.raises(ValueError, match="inconsistent snapshot: key k-x0 names unknown") as e:
        consistency.check(policy)
    assert isinstance(e.value, consistency.InconsistentSnapshot)
    assert len(e.value.problems) == 25
    assert str(e.value).endswith("; and 15 more")


def test_the_check_in_slices_finds_what_the_whole_check_finds() -> None:
    policy = sound()
    for n in range(consistency.SLICE * 2 + 1):
        policy.keys.add(id=f"k-x{n}", tenant_id="t-a", key_hash=f"{n:064x}", route_ids=["r-a"])
    _set(policy.keys[-1], project_id="pr-b")
    steps = consistency.problem_steps(policy)
    slices = 0
    while True:
        try:
            next(steps)
            slices += 1
        except StopIteration as done:
            found = done.value
            break
    assert slices > 2
    assert found == consistency.problems(policy)
    assert found == [f"key k-x{consistency.SLICE * 2} names project pr-b of no such tenant"]


def test_any_period_of_any_kind_is_consistent() -> None:
    """Budgets per day and longer, rate limits per minute: the control plane's offer when a
    limit is saved, not a rule of the snapshot (the data plane serves any window)."""
    policy = sound()
    _limit(policy).period = snapshot_pb2.LIMIT_PERIOD_MONTH  # requests per month
    _limit(policy, snapshot_pb2.LIMIT_SCOPE_TENANT).period = snapshot_pb2.LIMIT_PERIOD_MINUTE
    assert consistency.problems(policy) == []
