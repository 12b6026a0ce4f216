"""Policy rows -> protobuf snapshot: pure functions, no database and no clock.

``build_policy`` turns rows loaded by ``selectors.policy_rows`` into an ``asc.v1.Policy`` in a
canonical order (sorted by id), so the same configuration always encodes to the same bytes and
the same hash. ``shared.consistency.check`` then checks it before anything is published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from shared import rules
from shared.pb import snapshot_pb2

KIND = {
    "openai": snapshot_pb2.PROVIDER_KIND_OPENAI,
    "anthropic": snapshot_pb2.PROVIDER_KIND_ANTHROPIC,
    "mistral": snapshot_pb2.PROVIDER_KIND_MISTRAL,
    "azure_openai": snapshot_pb2.PROVIDER_KIND_AZURE_OPENAI,
    "gemini": snapshot_pb2.PROVIDER_KIND_GEMINI,
    "openai_compatible": snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE,
    "mock": snapshot_pb2.PROVIDER_KIND_MOCK,
}


SCOPE = {
    "tenant": snapshot_pb2.LIMIT_SCOPE_TENANT,
    "project": snapshot_pb2.LIMIT_SCOPE_PROJECT,
    "key": snapshot_pb2.LIMIT_SCOPE_KEY,
    "route": snapshot_pb2.LIMIT_SCOPE_ROUTE,
    "tag": snapshot_pb2.LIMIT_SCOPE_TAG,
}


@dataclass(frozen=True)
class TenantRow:
    id: str
    slug: str
    active: bool
    allowed_regions: Sequence[str]
    allowed_tags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    drop_unknown_tags: bool = False
    trace_prompts: bool = False


@dataclass(frozen=True)
class ProviderRow:
    id: str
    name: str
    kind: str
    base_url: str
    options: dict[str, object]
    enabled: bool


@dataclass(frozen=True)
class CredentialRow:
    id: str
    tenant_id: str
    provider_id: str
    sealed_secret: bytes


@dataclass(frozen=True)
class ModelRow:
    id: str
    provider_id: str
    provider_model: str
    region: str
    input_price: Decimal
    output_price: Decimal
    cached_input_price: Decimal


@dataclass(frozen=True)
class TargetRow:
    model_id: str
    credential_id: str
    priority: int
    weight: int


@dataclass(frozen=True)
class RouteRow:
    id: str
    tenant_id: str
    name: str
    targets: Sequence[TargetRow]
    connect_timeout_ms: int = 0
    first_token_timeout_ms: int = 0
    total_timeout_ms: int = 0
    max_retries: int = 0
    latency_aware: bool = False
    drop_untranslatable: bool = False
    cache_ttl_s: int = 0


@dataclass(frozen=True)
class KeyRow:
    id: str
    tenant_id: str
    name: str
    key_hash: str
    route_ids: Sequence[str]
    expires_at: datetime | None
    owner: str = ""
    asserts_end_user: bool = False
    project_id: str = ""
    max_parallel: int = 0
    max_body_bytes: int = 0
    max_tokens: int = 0
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectRow:
    id: str
    tenant_id: str
    name: str
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LimitRow:
    id: str
    tenant_id: str
    scope: str  # tenant, project, key, route, tag
    subject_id: str  # the subject's id; "key=value" for a tag
    kind: str  # budget, requests, tokens
    period: str  # shared.windows period
    time_zone: str
    units: int  # nano-USD, requests or tokens
    hard: bool


@dataclass(frozen=True)
class GuardrailRow:
    id: str
    tenant_id: str
    route_id: str  # "" for the tenant-wide policy
    on_input: bool
    on_output: bool
    categories: Sequence[str]
    actions: dict[str, str]
    default_action: str
    custom_patterns: Sequence[dict[str, Any]]
    keyword_lists: Sequence[dict[str, Any]]


@dataclass(frozen=True)
class IdentityProviderRow:
    id: str
    tenant_id: str
    issuer: str
    audience: str
    jwks_json: str
    subject_claim: str
    roles_claim: str
    route_ids: Sequence[str]
    role_routes: dict[str, list[str]]  # role -> route ids


@dataclass(frozen=True)
class PolicyRows:
    tenants: Sequence[TenantRow]
    providers: Sequence[ProviderRow]
    credentials: Sequence[CredentialRow]
    models: Sequence[ModelRow]
    routes: Sequence[RouteRow]
    keys: Sequence[KeyRow]
    guardrails: Sequence[GuardrailRow] = ()
    projects: Sequence[ProjectRow] = ()
    limits: Sequence[LimitRow] = ()
    identity_providers: Sequence[IdentityProviderRow] = ()


def _micros(usd_per_mtok: Decimal) -> int:
    return int((usd_per_mtok * 1_000_000).to_integral_value())


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def by_id[T: _HasId](items: Sequence[T]) -> list[T]:
    """Rows in canonical order, so the same configuration always encodes the same."""
    return sorted(items, key=lambda item: item.id)


def tags_of(tags: Mapping[str, str]) -> list[snapshot_pb2.Tag]:
    return [snapshot_pb2.Tag(key=k, value=v) for k, v in sorted(tags.items())]


def build_policy(rows: PolicyRows) -> snapshot_pb2.Policy:

    return snapshot_pb2.Policy(
        tenants=[
            snapshot_pb2.Tenant(
                id=t.id,
                slug=t.slug,
                active=t.active,
                allowed_regions=sorted(t.allowed_regions),
                allowed_tags=[
                    snapshot_pb2.TagRule(key=k, values=sorted(v))
                    for k, v in sorted(t.allowed_tags.items())
                ],
                drop_unknown_tags=t.drop_unknown_tags,
                trace_prompts=t.trace_prompts,
            )
            for t in by_id(rows.tenants)
        ],
        providers=[
            snapshot_pb2.Provider(
                id=p.id,
                name=p.name,
                kind=KIND[p.kind],
                base_url=p.base_url,
                options={k: str(v) for k, v in p.options.items()},
                enabled=p.enabled,
            )
            for p in by_id(rows.providers)
        ],
        credentials=[
            snapshot_pb2.Credential(
                id=c.id,
                tenant_id=c.tenant_id,
                provider_id=c.provider_id,
                sealed_secret=c.sealed_secret,
            )
            for c in by_id(rows.credentials)
        ],
        models=[
            snapshot_pb2.Model(
                id=m.id,
                provider_id=m.provider_id,
                provider_model=m.provider_model,
                region=m.region,
                input_price_micros_per_mtok=_micros(m.input_price),
                output_price_micros_per_mtok=_micros(m.output_price),
                cached_input_price_micros_per_mtok=_micros(m.cached_input_price),
            )
            for m in by_id(rows.models)
        ],
        routes=[
            snapshot_pb2.Route(
                id=r.id,
                tenant_id=r.tenant_id,
                name=r.name,
                targets=[
                    snapshot_pb2.RouteTarget(
                        model_id=t.model_id,
                        credential_id=t.credential_id,
                        priority=t.priority,
                        weight=t.weight,
                    )
                    for t in r.targets  # already in priority order: order is meaningful
                ],
                connect_timeout_ms=r.connect_timeout_ms,
                first_token_timeout_ms=r.first_token_timeout_ms,
                total_timeout_ms=r.total_timeout_ms,
                max_retries=r.max_retries,
                latency_aware=r.latency_aware,
                drop_untranslatable=r.drop_untranslatable,
                cache_ttl_s=r.cache_ttl_s,
            )
            for r in by_id(rows.routes)
        ],
        keys=[
            snapshot_pb2.VirtualKey(
                id=k.id,
                tenant_id=k.tenant_id,
                name=k.name,
                key_hash=k.key_hash,
                route_ids=sorted(k.route_ids),
                expires_at_unix=int(k.expires_at.timestamp()) if k.expires_at else 0,
                owner=k.owner,
                asserts_end_user=k.asserts_end_user,
                project_id=k.project_id,
                max_parallel=k.max_parallel,
                max_body_bytes=k.max_body_bytes,
                max_tokens=k.max_tokens,
                tags=tags_of(k.tags),
            )
            for k in by_id(rows.keys)
        ],
        guardrails=[_guardrail(g) for g in by_id(rows.guardrails)],
        identity_providers=[
            snapshot_pb2.IdentityProvider(
                id=i.id,
                tenant_id=i.tenant_id,
                issuer=i.issuer,
                audience=i.audience,
                jwks_json=i.jwks_json,
                subject_claim=i.subject_claim,
                roles_claim=i.roles_claim,
                route_ids=sorted(i.route_ids),
                role_routes=[
                    snapshot_pb2.RoleRoutes(role=role, route_ids=sorted(ids))
                    for role, ids in sorted(i.role_routes.items())
                ],
            )
            for i in by_id(rows.identity_providers)
        ],
        projects=[
            snapshot_pb2.Project(id=p.id, tenant_id=p.tenant_id, name=p.name, tags=tags_of(p.tags))
            for p in by_id(rows.projects)
        ],
        limits=[
            snapshot_pb2.Limit(
                id=m.id,
                tenant_id=m.tenant_id,
                scope=SCOPE[m.scope],
                subject_id=m.subject_id,
                kind=rules.LIMIT_KINDS[m.kind],
                period=rules.LIMIT_PERIODS[m.period],
                time_zone=m.time_zone,
                amount=m.units,
                hard=m.hard,
            )
            for m in by_id(rows.limits)
        ],
    )


def _guardrail(g: GuardrailRow) -> snapshot_pb2.GuardrailPolicy:
    return snapshot_pb2.GuardrailPolicy(
        id=g.id,
        tenant_id=g.tenant_id,
        route_id=g.route_id,
        on_input=g.on_input,
        on_output=g.on_output,
        categories=sorted(g.categories),
        actions=g.actions,
        default_action=g.default_action,
        custom_patterns=[
            snapshot_pb2.CustomPatterns(
                name=c["name"],
                patterns=c["patterns"],
                ignore_case=bool(c.get("ignore_case", False)),
                max_len=int(c.get("max_len", rules.DEFAULT_MAX_LEN)),
            )
            for c in g.custom_patterns
        ],
        keyword_lists=[
            snapshot_pb2.KeywordList(name=k["name"], words=k["words"]) for k in g.keyword_lists
        ],
    )
