"""Compile a policy snapshot into immutable, precompiled lookups for the request path.

``compile_snapshot`` is pure (no I/O, no clock) and all-or-nothing: it first runs the one
consistency check both planes share (``shared.consistency``: ids, references, per-entity rules),
raising ``InconsistentSnapshot`` with every problem, then compiles, raising ``PolicyError`` for
what only a data plane can find out: a sealed credential it cannot open, a guardrail pattern
its engine cannot compile, a key set it cannot use. The config client turns either into a NACK
while the previous policy stays in force. Opening the credentials up front means a snapshot
the node cannot decrypt is refused rather than failing on the first request.
``compile_steps`` does the same work as a generator, so a serving node compiles a large
snapshot in slices on its event loop (``snapshots.store.compile_serving``).
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from types import MappingProxyType
from zoneinfo import ZoneInfoNotFoundError

from data_plane.guardrails.policy import Guard, GuardrailSnapshotError, compile_guardrails
from data_plane.policy.keys import SLICE, KeyEntry, KeyTable
from data_plane.policy.oidc import Issuer, parse_jwks
from data_plane.types import DEFAULT_ROUTE_OPTIONS, Prices, RouteOptions, Target
from shared import consistency, windows
from shared.crypto import CryptoError, Keyring, credential_context
from shared.pb import snapshot_pb2


class PolicyError(ValueError):
    """The snapshot is consistent but this node cannot use it (a credential it cannot open, a
    pattern its guardrail engine refuses); it must not be applied."""


@dataclass(frozen=True, slots=True)
class TenantEntry:
    id: str
    slug: str
    active: bool
    allowed_regions: frozenset[str]
    # The tenant consents to prompt and completion text in its traces (data_plane/tracing.py).
    trace_prompts: bool = False
    # Request tags accepted: key -> allowed values (empty: any); see data_plane/policy/tags.py.
    tag_rules: Mapping[str, frozenset[str]] = field(default_factory=dict)
    drop_unknown_tags: bool = False


@dataclass(frozen=True, slots=True)
class LimitEntry:
    """A budget (nano-USD) or rate limit (requests or tokens per minute), shared by leases."""

    id: str
    tenant_id: str
    subject_id: str  # the tenant, project, key or route it applies to; "key=value" for a tag
    kind: int  # snapshot_pb2.LimitKind
    period: str  # shared.windows period
    time_zone: str
    amount: int
    hard: bool
    # ``time_zone`` resolved when the snapshot is compiled: windows are computed on the request
    # path, which must not read the time-zone database (``shared.windows.zone``).
    zone: tzinfo = UTC


@dataclass(frozen=True, slots=True)
class RouteEntry:
    id: str
    tenant_id: str
    name: str
    targets: tuple[Target, ...]
    options: RouteOptions = field(default_factory=lambda: DEFAULT_ROUTE_OPTIONS)


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    version: int
    hash: str
    created_unix_ms: int
    tenants: Mapping[str, TenantEntry]
    keys_by_hash: Mapping[str, KeyEntry]
    routes: Mapping[str, RouteEntry]
    routes_by_name: Mapping[tuple[str, str], RouteEntry]
    models: Mapping[str, snapshot_pb2.Model] = field(repr=False)
    providers: Mapping[str, snapshot_pb2.Provider] = field(repr=False)
    credentials: Mapping[str, snapshot_pb2.Credential] = field(repr=False)
    # Guardrails by (tenant id, route id or "" for tenant-wide); see guardrail_policy.for_route.
    guardrails: Mapping[tuple[str, str], Guard] = field(default_factory=dict, repr=False)
    # Limits by the id of what they apply to (tenant, project, key or route: ids are UUIDs).
    limits_by_subject: Mapping[str, tuple[LimitEntry, ...]] = field(default_factory=dict)
    # OIDC issuers by their `iss`.
    issuers: Mapping[str, Issuer] = field(default_factory=dict, repr=False)
    # Tags of the projects that have some, by project id, as (key, value) sorted by key.
    project_tags: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


def tenant_entry(t: snapshot_pb2.Tenant) -> TenantEntry:
    return TenantEntry(
        t.id,
        t.slug,
        t.active,
        frozenset(t.allowed_regions),
        trace_prompts=t.trace_prompts,
        tag_rules=MappingProxyType({r.key: frozenset(r.values) for r in t.allowed_tags}),
        drop_unknown_tags=t.drop_unknown_tags,
    )


def tag_subject(tenant_id: str, tag: str) -> str:
    """Where a tag limit is filed in ``limits_by_subject``: tag values are per tenant."""
    return f"{tenant_id}/{tag}"


def limit_subject(pb: snapshot_pb2.Limit) -> str:
    return subject_of(pb.scope, pb.tenant_id, pb.subject_id)


def subject_of(scope: int, tenant_id: str, subject_id: str) -> str:
    """What a limit of ``scope`` applies to, as ``CompiledPolicy.limits_by_subject`` keys it."""
    if scope == snapshot_pb2.LIMIT_SCOPE_TAG:
        return tag_subject(tenant_id, subject_id)
    return subject_id


def project_tags(
    projects: Iterable[snapshot_pb2.Project],
) -> dict[str, tuple[tuple[str, str], ...]]:
    return {p.id: tuple((t.key, t.value) for t in p.tags) for p in projects if p.tags}


def compile_snapshot(snapshot: snapshot_pb2.Snapshot, keyring: Keyring | None) -> CompiledPolicy:
    steps = compile_steps(snapshot, keyring)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            compiled: CompiledPolicy = done.value
            return compiled


def compile_steps(
    snapshot: snapshot_pb2.Snapshot,
    keyring: Keyring | None,
    *,
    checked: bool = False,
    key_hashes: Sequence[str] | None = None,
) -> Generator[None, None, CompiledPolicy]:
    """``compile_snapshot`` in slices: it yields after every ``SLICE`` keys, so a caller on
    the event loop can let requests run in between (a compile in a thread would compete with
    the loop for the GIL and stall it for seconds on a large snapshot). The consistency check
    runs first, in slices too; what follows relies on it (every reference resolves).
    ``checked``: the caller runs the consistency check itself (``snapshots.checker``, in a
    process of its own) and discards the result, or any error, when it finds problems;
    ``key_hashes``: the keys' hashes as looked up, in order, when the checker read them."""
    policy = snapshot.policy
    problems = [] if checked else (yield from consistency.problem_steps(policy))
    if problems:
        raise consistency.InconsistentSnapshot(problems)
    tenants = {t.id: tenant_entry(t) for t in policy.tenants}
    providers = {p.id: p for p in policy.providers}
    models = {m.id: m for m in policy.models}
    credentials = {c.id: c for c in policy.credentials}
    api_keys = _open_credentials(credentials, keyring)
    yield
    routes: dict[str, RouteEntry] = {}
    routes_by_name: dict[tuple[str, str], RouteEntry] = {}
    made: dict[tuple[str, str, int, int], Target] = {}
    for n, route_pb in enumerate(policy.routes, 1):
        route = _compile_route(route_pb, models, providers, credentials, api_keys, made)
        routes[route.id] = route
        routes_by_name[(route.tenant_id, route.name)] = route
        if n % (SLICE // 5) == 0:
            yield
    keys_by_hash = yield from KeyTable.steps(policy.keys, key_hashes)
    guardrails = yield from _compile_guardrails(policy)
    limits = yield from _compile_limits(policy)
    yield
    issuers = _compile_issuers(policy)
    return CompiledPolicy(
        version=snapshot.version,
        hash=snapshot.hash,
        created_unix_ms=snapshot.created_unix_ms,
        tenants=MappingProxyType(tenants),
        keys_by_hash=keys_by_hash,
        routes=MappingProxyType(routes),
        routes_by_name=MappingProxyType(routes_by_name),
        models=MappingProxyType(models),
        providers=MappingProxyType(providers),
        credentials=MappingProxyType(credentials),
        guardrails=MappingProxyType(guardrails),
        limits_by_subject=MappingProxyType(limits),
        issuers=MappingProxyType(issuers),
        project_tags=MappingProxyType(project_tags(policy.projects)),
    )


def _compile_issuers(policy: snapshot_pb2.Policy) -> dict[str, Issuer]:
    issuers: dict[str, Issuer] = {}
    for pb in policy.identity_providers:
        try:
            keys = parse_jwks(pb.jwks_json)
        except ValueError as exc:
            raise PolicyError(f"identity provider {pb.id!r}: {exc}") from exc
        issuers[pb.issuer] = Issuer(
            pb.id,
            pb.tenant_id,
            pb.issuer,
            pb.audience,
            MappingProxyType(keys),
            pb.subject_claim or "sub",
            pb.roles_claim or "groups",
            frozenset(pb.route_ids),
            MappingProxyType({rr.role: frozenset(rr.route_ids) for rr in pb.role_routes}),
        )
    return issuers


_PERIODS = {
    snapshot_pb2.LIMIT_PERIOD_MINUTE: windows.MINUTE,
    snapshot_pb2.LIMIT_PERIOD_DAY: windows.DAY,
    snapshot_pb2.LIMIT_PERIOD_WEEK: windows.WEEK,
    snapshot_pb2.LIMIT_PERIOD_MONTH: windows.MONTH,
    snapshot_pb2.LIMIT_PERIOD_NONE: windows.NONE,
}


def _compile_limits(
    policy: snapshot_pb2.Policy,
) -> Generator[None, None, dict[str, tuple[LimitEntry, ...]]]:
    """Limits by subject, each with its time zone resolved: the one read of the time-zone
    database per zone name happens here, not on the request path (a serving node loads the
    zones in a thread before it compiles: ``SnapshotStore.compile_serving``)."""
    by_subject: dict[str, list[LimitEntry]] = {}
    zones: dict[tuple[int, str], tuple[str, tzinfo]] = {}  # by (period, time zone), resolved
    for n, pb in enumerate(policy.limits, 1):
        if n % (SLICE // 5) == 0:  # a millisecond or two
            yield
        time_zone, subject_id, tenant_id = pb.time_zone, pb.subject_id, pb.tenant_id
        resolved = zones.get((pb.period, time_zone))
        if resolved is None:
            period = _PERIODS[pb.period]  # a known period: the consistency check saw to it
            try:
                resolved = zones[(pb.period, time_zone)] = (
                    period,
                    windows.zone(period, time_zone),
                )
            except (ZoneInfoNotFoundError, ValueError) as exc:  # not in this node's database
                raise PolicyError(f"limit {pb.id!r}: unknown time zone {time_zone!r}") from exc
        entry = LimitEntry(
            pb.id,
            tenant_id,
            subject_id,
            pb.kind,
            resolved[0],
            time_zone,
            pb.amount,
            pb.hard,
            resolved[1],
        )
        by_subject.setdefault(subject_of(pb.scope, tenant_id, subject_id), []).append(entry)
    return {subject: tuple(entries) for subject, entries in by_subject.items()}


def _compile_guardrails(
    policy: snapshot_pb2.Policy,
) -> Generator[None, None, dict[tuple[str, str], Guard]]:
    """Guards by scope, compiled a few policies per slice (each compiles its patterns)."""
    guards: dict[tuple[str, str], Guard] = {}
    pbs = list(policy.guardrails)
    for start in range(0, len(pbs), 10):
        try:
            chunk = compile_guardrails(pbs[start : start + 10])
        except GuardrailSnapshotError as exc:
            raise PolicyError(str(exc)) from exc
        guards.update(chunk)
        yield
    return guards


def _open_credentials(
    credentials: Mapping[str, snapshot_pb2.Credential], keyring: Keyring | None
) -> dict[str, str]:
    opened: dict[str, str] = {}
    for cred in credentials.values():
        if not cred.sealed_secret:
            opened[cred.id] = ""
            continue
        if keyring is None:
            raise PolicyError("the snapshot holds sealed credentials but ASC_SEAL_KEY is not set")
        try:
            opened[cred.id] = keyring.open(cred.sealed_secret, credential_context(cred.id)).decode()
        except (CryptoError, UnicodeDecodeError) as exc:
            raise PolicyError(f"credential {cred.id!r} cannot be opened: {exc}") from exc
    return opened


def _compile_route(
    route: snapshot_pb2.Route,
    models: Mapping[str, snapshot_pb2.Model],
    providers: Mapping[str, snapshot_pb2.Provider],
    credentials: Mapping[str, snapshot_pb2.Credential],
    api_keys: Mapping[str, str],
    made: dict[tuple[str, str, int, int], Target] | None = None,
) -> RouteEntry:
    """``made``: the targets compiled so far in this compile, shared by the routes that name
    the same model, credential, priority and weight (10k routes use a few hundred)."""
    targets: list[Target] = []
    for t in route.targets:
        seen = (t.model_id, t.credential_id, t.priority, t.weight)
        if made is not None and (same := made.get(seen)) is not None:
            targets.append(same)
            continue
        model, cred = models[t.model_id], credentials[t.credential_id]
        provider = providers[model.provider_id]
        targets.append(
            Target(
                kind=provider.kind,
                base_url=provider.base_url,
                options=MappingProxyType(dict(provider.options)),
                api_key=api_keys[cred.id],
                provider_model=model.provider_model,
                model_id=model.id,
                provider_id=provider.id,
                credential_id=cred.id,
                region=model.region,
                prices=Prices(
                    model.input_price_micros_per_mtok,
                    model.output_price_micros_per_mtok,
                    model.cached_input_price_micros_per_mtok,
                ),
                priority=t.priority,
                weight=t.weight,
                enabled=provider.enabled,
            )
        )
        if made is not None:
            made[seen] = targets[-1]
    options = _route_options(
        route.connect_timeout_ms,
        route.first_token_timeout_ms,
        route.total_timeout_ms,
        route.max_retries,
        route.latency_aware,
        route.drop_untranslatable,
        route.cache_ttl_s,
    )
    return RouteEntry(route.id, route.tenant_id, route.name, tuple(targets), options)


# Routes share a few sets of options: each set is made once (making one per route was half
# of a large compile's routes). The options are immutable, so sharing them is safe.
@functools.lru_cache(maxsize=1024)
def _route_options(
    connect_ms: int,
    first_token_ms: int,
    total_ms: int,
    max_retries: int,
    latency_aware: bool,
    drop_untranslatable: bool,
    cache_ttl_s: int,
) -> RouteOptions:
    default = DEFAULT_ROUTE_OPTIONS
    return RouteOptions(
        connect_timeout_s=_seconds(connect_ms, default.connect_timeout_s),
        first_token_timeout_s=_seconds(first_token_ms, default.first_token_timeout_s),
        total_timeout_s=_seconds(total_ms, default.total_timeout_s),
        max_retries=max_retries,
        latency_aware=latency_aware,
        drop_untranslatable=drop_untranslatable,
        cache_ttl_s=cache_ttl_s,
    )


def _seconds(ms: int, default: float) -> float:
    return ms / 1000 if ms else default
