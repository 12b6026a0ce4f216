"""Is a policy snapshot consistent? One check for both planes (go-control-plane's
``Snapshot.Consistent()``).

The control plane runs it before storing a snapshot, the data plane before applying one, so a
rule about what makes a snapshot valid lives here and nowhere else: ids present and unique per
kind, every reference resolving to an entity of the same tenant, names unique where they are
looked up by name, and every entity's own rules (``shared.rules``, which the control plane also
applies when a row is saved).

``problems`` is pure (no I/O, no clock) and makes one pass per kind with sets and dicts, so it
stays fast on snapshots of 100k keys: keys sharing a (tenant, routes) grant are checked once.
It reports every problem, not just the first, each naming the entity by kind and id.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Mapping, Sequence
from typing import Protocol

from shared import rules, tags
from shared.pb import snapshot_pb2

# Problems quoted in the exception's message (all of them are in ``problems``).
_QUOTED = 10
# Keys or limits checked between two yields of ``problem_steps`` (a few milliseconds).
SLICE = 500


class InconsistentSnapshot(ValueError):
    """The snapshot breaks at least one rule; it must be neither stored nor applied."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "; ".join(self.problems[:_QUOTED])
        more = len(self.problems) - _QUOTED
        super().__init__(
            f"inconsistent snapshot: {shown}" + (f"; and {more} more" if more > 0 else "")
        )


def key_slot(key_hash: str) -> str:
    """The form a key's stored hash is looked up by: hashes match whatever their case (so two
    keys whose hashes differ only in case repeat one hash)."""
    return key_hash.lower()


def check(policy: snapshot_pb2.Policy) -> None:
    """Raise ``InconsistentSnapshot`` with every problem when there is one."""
    found = problems(policy)
    if found:
        raise InconsistentSnapshot(found)


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _index[T: _HasId](items: Iterable[T], kind: str, out: list[str]) -> dict[str, T]:
    """Items by id; an empty or repeated id is a problem (the first of a repeated id wins)."""
    index: dict[str, T] = {}
    for item in items:
        item_id = item.id
        if not item_id:
            out.append(f"a {kind} has an empty id")
        elif item_id in index:
            out.append(f"duplicate {kind} id {item_id}")
        else:
            index[item_id] = item
    return index


def problems(policy: snapshot_pb2.Policy) -> list[str]:
    """Every problem of the policy, as messages; empty when it is consistent."""
    steps = problem_steps(policy)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            found: list[str] = done.value
            return found


def problem_steps(policy: snapshot_pb2.Policy) -> Generator[None, None, list[str]]:
    """``problems`` in slices: it yields after every ``SLICE`` keys or limits, so a caller on
    an event loop can serve requests in between (a 100k-key snapshot takes a few hundred
    milliseconds in all)."""
    out: list[str] = []
    tenants = _index(policy.tenants, "tenant", out)
    tag_rules = _tag_rules(tenants, out)
    providers = _index(policy.providers, "provider", out)
    models = _index(policy.models, "model", out)
    for m in models.values():
        if m.provider_id not in providers:
            out.append(f"model {m.id} names unknown provider {m.provider_id}")
    credentials = _index(policy.credentials, "credential", out)
    for c in credentials.values():
        if c.tenant_id not in tenants:
            out.append(f"credential {c.id} names unknown tenant {c.tenant_id}")
        if c.provider_id not in providers:
            out.append(f"credential {c.id} names unknown provider {c.provider_id}")
    routes = _index(policy.routes, "route", out)
    yield from _routes(routes, tenants, models, credentials, out)
    projects = _index(policy.projects, "project", out)
    for p in projects.values():
        if p.tenant_id not in tenants:
            out.append(f"project {p.id} names unknown tenant {p.tenant_id}")
        if p.tags:
            _tag_problems(f"project {p.id}", p.tags, out)
    yield
    keys = yield from _keys(policy.keys, tenants, routes, projects, out)
    _guardrails(policy.guardrails, tenants, routes, out)
    yield
    yield from _limits(policy.limits, tenants, projects, keys, routes, tag_rules, out)
    _identity_providers(policy.identity_providers, tenants, routes, out)
    return out


def _routes(
    routes: Mapping[str, snapshot_pb2.Route],
    tenants: Mapping[str, snapshot_pb2.Tenant],
    models: Mapping[str, snapshot_pb2.Model],
    credentials: Mapping[str, snapshot_pb2.Credential],
    out: list[str],
) -> Generator[None, None, None]:
    names: set[tuple[str, str]] = set()
    for n, r in enumerate(routes.values(), 1):
        if n % SLICE == 0:
            yield
        if r.tenant_id not in tenants:
            out.append(f"route {r.id} names unknown tenant {r.tenant_id}")
        if not r.name:
            out.append(f"route {r.id} has no name")
        elif (r.tenant_id, r.name) in names:
            out.append(f"route name {r.name} is used twice in tenant {r.tenant_id}")
        names.add((r.tenant_id, r.name))
        for t in r.targets:
            model, cred = models.get(t.model_id), credentials.get(t.credential_id)
            if model is None:
                out.append(f"route {r.id} names unknown model {t.model_id}")
            if cred is None:
                out.append(f"route {r.id} names unknown credential {t.credential_id}")
            elif cred.tenant_id != r.tenant_id:
                out.append(f"route {r.id} uses credential {cred.id} of another tenant")
            elif model is not None and cred.provider_id != model.provider_id:
                out.append(f"route {r.id}: credential {cred.id} is for another provider")


def _keys(
    keys: Iterable[snapshot_pb2.VirtualKey],
    tenants: Mapping[str, snapshot_pb2.Tenant],
    routes: Mapping[str, snapshot_pb2.Route],
    projects: Mapping[str, snapshot_pb2.Project],
    out: list[str],
) -> Generator[None, None, dict[str, str]]:
    """Key ids to their tenant ids. The hot loop of a large snapshot: a grant (tenant and
    routes) shared by many keys is checked once."""
    tenant_of: dict[str, str] = {}
    hashes: set[str] = set()
    grants: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for n, k in enumerate(keys, 1):
        if n % SLICE == 0:
            yield
        key_id, tenant_id = k.id, k.tenant_id
        if not key_id or key_id in tenant_of:
            out.append(f"duplicate key id {key_id}" if key_id else "a key has an empty id")
            continue
        tenant_of[key_id] = tenant_id
        if tenant_id not in tenants:
            out.append(f"key {key_id} names unknown tenant {tenant_id}")
        key_hash = key_slot(k.key_hash)
        if not key_hash:
            out.append(f"key {key_id} has no hash")
        elif key_hash in hashes:
            out.append(f"key {key_id} repeats another key's hash")
        hashes.add(key_hash)
        grant = (tenant_id, tuple(k.route_ids))
        wrong = grants.get(grant)
        if wrong is None:
            wrong = grants[grant] = _grant_problems(tenant_id, grant[1], routes)
        if wrong:
            out.extend(f"key {key_id} {problem}" for problem in wrong)
        if k.tags:
            _tag_problems(f"key {key_id}", k.tags, out)
        project_id = k.project_id
        if project_id:
            project = projects.get(project_id)
            if project is None or project.tenant_id != tenant_id:
                out.append(f"key {key_id} names project {project_id} of no such tenant")
    return tenant_of


def _grant_problems(
    tenant_id: str, route_ids: Iterable[str], routes: Mapping[str, snapshot_pb2.Route]
) -> list[str]:
    wrong: list[str] = []
    for route_id in route_ids:
        route = routes.get(route_id)
        if route is None:
            wrong.append(f"names unknown route {route_id}")
        elif route.tenant_id != tenant_id:
            wrong.append(f"names route {route.name} of another tenant")
    return wrong


def _guardrails(
    guardrails: Iterable[snapshot_pb2.GuardrailPolicy],
    tenants: Mapping[str, snapshot_pb2.Tenant],
    routes: Mapping[str, snapshot_pb2.Route],
    out: list[str],
) -> None:
    scopes: set[tuple[str, str]] = set()
    for g in _index(guardrails, "guardrail", out).values():
        if g.tenant_id not in tenants:
            out.append(f"guardrail {g.id} names unknown tenant {g.tenant_id}")
        if g.route_id:
            route = routes.get(g.route_id)
            if route is None:
                out.append(f"guardrail {g.id} names unknown route {g.route_id}")
            elif route.tenant_id != g.tenant_id:
                out.append(f"guardrail {g.id} names route {route.name} of another tenant")
        if (g.tenant_id, g.route_id) in scopes:
            out.append(f"guardrail {g.id}: a second policy for the same tenant or route")
        scopes.add((g.tenant_id, g.route_id))
        found = rules.guardrail_problems(
            g.categories,
            g.actions,
            g.default_action,
            [
                rules.PatternList(
                    c.name, c.patterns, c.ignore_case, c.max_len or rules.DEFAULT_MAX_LEN
                )
                for c in g.custom_patterns
            ],
            [rules.WordList(k.name, k.words) for k in g.keyword_lists],
        )
        for field, messages in found.items():
            out.extend(f"guardrail {g.id} {field}: {message}" for message in messages)


def _limits(
    limits: Iterable[snapshot_pb2.Limit],
    tenants: Mapping[str, snapshot_pb2.Tenant],
    projects: Mapping[str, snapshot_pb2.Project],
    keys: Mapping[str, str],
    routes: Mapping[str, snapshot_pb2.Route],
    tag_rules: Mapping[str, tags.Rules],
    out: list[str],
) -> Generator[None, None, None]:
    # Subject id -> its tenant id, per scope.
    owners: dict[int, Mapping[str, str]] = {
        snapshot_pb2.LIMIT_SCOPE_TENANT: {t: t for t in tenants},
        snapshot_pb2.LIMIT_SCOPE_PROJECT: {p.id: p.tenant_id for p in projects.values()},
        snapshot_pb2.LIMIT_SCOPE_KEY: keys,
        snapshot_pb2.LIMIT_SCOPE_ROUTE: {r.id: r.tenant_id for r in routes.values()},
    }
    for n, lim in enumerate(_index(limits, "limit", out).values(), 1):
        if n % SLICE == 0:
            yield
        if not lim.tenant_id or lim.tenant_id not in tenants:
            out.append(f"limit {lim.id} names unknown tenant {lim.tenant_id}")
        owner = owners.get(lim.scope)
        if lim.scope == snapshot_pb2.LIMIT_SCOPE_TAG:
            tag = tags.parse_subject(lim.subject_id)
            if tag is None or not tags.allows(tag_rules.get(lim.tenant_id, {}), *tag):
                out.append(f"limit {lim.id} names tag {lim.subject_id} its tenant does not allow")
        elif owner is None:
            out.append(f"limit {lim.id} has no valid scope")
        elif owner.get(lim.subject_id) != lim.tenant_id:
            out.append(f"limit {lim.id} names {lim.subject_id} outside tenant {lim.tenant_id}")
        for field, messages in rules.limit_problems(lim.kind, lim.period, lim.amount).items():
            out.extend(f"limit {lim.id} {field}: {message}" for message in messages)


def _tag_rules(tenants: Mapping[str, snapshot_pb2.Tenant], out: list[str]) -> dict[str, tags.Rules]:
    """Each tenant's tag rules as key -> values; a malformed or repeated key is a problem."""
    found: dict[str, tags.Rules] = {}
    for t in tenants.values():
        rules_: dict[str, list[str]] = {}
        for rule in t.allowed_tags:
            if rule.key in rules_:
                out.append(f"tenant {t.id} repeats tag rule {rule.key}")
            rules_[rule.key] = list(rule.values)
        out.extend(f"tenant {t.id} allowed_tags: {p}" for p in tags.rules_problems(rules_))
        found[t.id] = rules_
    return found


def _tag_problems(owner: str, set_tags: Iterable[snapshot_pb2.Tag], out: list[str]) -> None:
    pairs = {t.key: t.value for t in set_tags}
    out.extend(f"{owner} tags: {p}" for p in tags.tags_problems(pairs))


def _identity_providers(
    identity_providers: Iterable[snapshot_pb2.IdentityProvider],
    tenants: Mapping[str, snapshot_pb2.Tenant],
    routes: Mapping[str, snapshot_pb2.Route],
    out: list[str],
) -> None:
    issuers: set[str] = set()
    for idp in _index(identity_providers, "identity provider", out).values():
        if idp.tenant_id not in tenants:
            out.append(f"identity provider {idp.id} names unknown tenant {idp.tenant_id}")
        if not idp.issuer:
            out.append(f"identity provider {idp.id} has no issuer")
        elif idp.issuer in issuers:
            out.append(f"identity provider {idp.id} repeats issuer {idp.issuer}")
        issuers.add(idp.issuer)
        granted = [*idp.route_ids, *(r for rr in idp.role_routes for r in rr.route_ids)]
        for route_id in granted:
            route = routes.get(route_id)
            if route is None or route.tenant_id != idp.tenant_id:
                out.append(f"identity provider {idp.id} grants route {route_id} of no such tenant")
        out.extend(
            f"identity provider {idp.id} jwks: {problem}"
            for problem in rules.jwks_problems(idp.jwks_json)
        )
