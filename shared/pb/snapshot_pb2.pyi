from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LimitScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIMIT_SCOPE_UNSPECIFIED: _ClassVar[LimitScope]
    LIMIT_SCOPE_TENANT: _ClassVar[LimitScope]
    LIMIT_SCOPE_PROJECT: _ClassVar[LimitScope]
    LIMIT_SCOPE_KEY: _ClassVar[LimitScope]
    LIMIT_SCOPE_ROUTE: _ClassVar[LimitScope]
    LIMIT_SCOPE_TAG: _ClassVar[LimitScope]

class LimitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIMIT_KIND_UNSPECIFIED: _ClassVar[LimitKind]
    LIMIT_KIND_BUDGET: _ClassVar[LimitKind]
    LIMIT_KIND_REQUESTS: _ClassVar[LimitKind]
    LIMIT_KIND_TOKENS: _ClassVar[LimitKind]

class LimitPeriod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIMIT_PERIOD_UNSPECIFIED: _ClassVar[LimitPeriod]
    LIMIT_PERIOD_MINUTE: _ClassVar[LimitPeriod]
    LIMIT_PERIOD_DAY: _ClassVar[LimitPeriod]
    LIMIT_PERIOD_WEEK: _ClassVar[LimitPeriod]
    LIMIT_PERIOD_MONTH: _ClassVar[LimitPeriod]
    LIMIT_PERIOD_NONE: _ClassVar[LimitPeriod]

class ProviderKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROVIDER_KIND_UNSPECIFIED: _ClassVar[ProviderKind]
    PROVIDER_KIND_OPENAI: _ClassVar[ProviderKind]
    PROVIDER_KIND_ANTHROPIC: _ClassVar[ProviderKind]
    PROVIDER_KIND_MISTRAL: _ClassVar[ProviderKind]
    PROVIDER_KIND_AZURE_OPENAI: _ClassVar[ProviderKind]
    PROVIDER_KIND_GEMINI: _ClassVar[ProviderKind]
    PROVIDER_KIND_OPENAI_COMPATIBLE: _ClassVar[ProviderKind]
    PROVIDER_KIND_MOCK: _ClassVar[ProviderKind]
LIMIT_SCOPE_UNSPECIFIED: LimitScope
LIMIT_SCOPE_TENANT: LimitScope
LIMIT_SCOPE_PROJECT: LimitScope
LIMIT_SCOPE_KEY: LimitScope
LIMIT_SCOPE_ROUTE: LimitScope
LIMIT_SCOPE_TAG: LimitScope
LIMIT_KIND_UNSPECIFIED: LimitKind
LIMIT_KIND_BUDGET: LimitKind
LIMIT_KIND_REQUESTS: LimitKind
LIMIT_KIND_TOKENS: LimitKind
LIMIT_PERIOD_UNSPECIFIED: LimitPeriod
LIMIT_PERIOD_MINUTE: LimitPeriod
LIMIT_PERIOD_DAY: LimitPeriod
LIMIT_PERIOD_WEEK: LimitPeriod
LIMIT_PERIOD_MONTH: LimitPeriod
LIMIT_PERIOD_NONE: LimitPeriod
PROVIDER_KIND_UNSPECIFIED: ProviderKind
PROVIDER_KIND_OPENAI: ProviderKind
PROVIDER_KIND_ANTHROPIC: ProviderKind
PROVIDER_KIND_MISTRAL: ProviderKind
PROVIDER_KIND_AZURE_OPENAI: ProviderKind
PROVIDER_KIND_GEMINI: ProviderKind
PROVIDER_KIND_OPENAI_COMPATIBLE: ProviderKind
PROVIDER_KIND_MOCK: ProviderKind

class Snapshot(_message.Message):
    __slots__ = ("version", "hash", "created_unix_ms", "policy")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    version: int
    hash: str
    created_unix_ms: int
    policy: Policy
    def __init__(self, version: _Optional[int] = ..., hash: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class SnapshotDelta(_message.Message):
    __slots__ = ("version", "hash", "created_unix_ms", "base_version", "base_hash", "upserts", "removed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_HASH_FIELD_NUMBER: _ClassVar[int]
    UPSERTS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    version: int
    hash: str
    created_unix_ms: int
    base_version: int
    base_hash: str
    upserts: Policy
    removed: PolicyIds
    def __init__(self, version: _Optional[int] = ..., hash: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., base_version: _Optional[int] = ..., base_hash: _Optional[str] = ..., upserts: _Optional[_Union[Policy, _Mapping]] = ..., removed: _Optional[_Union[PolicyIds, _Mapping]] = ...) -> None: ...

class PolicyIds(_message.Message):
    __slots__ = ("tenants", "providers", "credentials", "models", "routes", "keys", "guardrails", "projects", "limits", "identity_providers")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedScalarFieldContainer[str]
    providers: _containers.RepeatedScalarFieldContainer[str]
    credentials: _containers.RepeatedScalarFieldContainer[str]
    models: _containers.RepeatedScalarFieldContainer[str]
    routes: _containers.RepeatedScalarFieldContainer[str]
    keys: _containers.RepeatedScalarFieldContainer[str]
    guardrails: _containers.RepeatedScalarFieldContainer[str]
    projects: _containers.RepeatedScalarFieldContainer[str]
    limits: _containers.RepeatedScalarFieldContainer[str]
    identity_providers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tenants: _Optional[_Iterable[str]] = ..., providers: _Optional[_Iterable[str]] = ..., credentials: _Optional[_Iterable[str]] = ..., models: _Optional[_Iterable[str]] = ..., routes: _Optional[_Iterable[str]] = ..., keys: _Optional[_Iterable[str]] = ..., guardrails: _Optional[_Iterable[str]] = ..., projects: _Optional[_Iterable[str]] = ..., limits: _Optional[_Iterable[str]] = ..., identity_providers: _Optional[_Iterable[str]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("tenants", "providers", "credentials", "models", "routes", "keys", "guardrails", "projects", "limits", "identity_providers")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[Tenant]
    providers: _containers.RepeatedCompositeFieldContainer[Provider]
    credentials: _containers.RepeatedCompositeFieldContainer[Credential]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    keys: _containers.RepeatedCompositeFieldContainer[VirtualKey]
    guardrails: _containers.RepeatedCompositeFieldContainer[GuardrailPolicy]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    limits: _containers.RepeatedCompositeFieldContainer[Limit]
    identity_providers: _containers.RepeatedCompositeFieldContainer[IdentityProvider]
    def __init__(self, tenants: _Optional[_Iterable[_Union[Tenant, _Mapping]]] = ..., providers: _Optional[_Iterable[_Union[Provider, _Mapping]]] = ..., credentials: _Optional[_Iterable[_Union[Credential, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., keys: _Optional[_Iterable[_Union[VirtualKey, _Mapping]]] = ..., guardrails: _Optional[_Iterable[_Union[GuardrailPolicy, _Mapping]]] = ..., projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ..., limits: _Optional[_Iterable[_Union[Limit, _Mapping]]] = ..., identity_providers: _Optional[_Iterable[_Union[IdentityProvider, _Mapping]]] = ...) -> None: ...

class IdentityProvider(_message.Message):
    __slots__ = ("id", "tenant_id", "issuer", "audience", "jwks_json", "subject_claim", "roles_claim", "route_ids", "role_routes")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    JWKS_JSON_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_CLAIM_FIELD_NUMBER: _ClassVar[int]
    ROLES_CLAIM_FIELD_NUMBER: _ClassVar[int]
    ROUTE_IDS_FIELD_NUMBER: _ClassVar[int]
    ROLE_ROUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    issuer: str
    audience: str
    jwks_json: str
    subject_claim: str
    roles_claim: str
    route_ids: _containers.RepeatedScalarFieldContainer[str]
    role_routes: _containers.RepeatedCompositeFieldContainer[RoleRoutes]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., issuer: _Optional[str] = ..., audience: _Optional[str] = ..., jwks_json: _Optional[str] = ..., subject_claim: _Optional[str] = ..., roles_claim: _Optional[str] = ..., route_ids: _Optional[_Iterable[str]] = ..., role_routes: _Optional[_Iterable[_Union[RoleRoutes, _Mapping]]] = ...) -> None: ...

class RoleRoutes(_message.Message):
    __slots__ = ("role", "route_ids")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ROUTE_IDS_FIELD_NUMBER: _ClassVar[int]
    role: str
    route_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, role: _Optional[str] = ..., route_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("id", "tenant_id", "name", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    name: str
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class TagRule(_message.Message):
    __slots__ = ("key", "values")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    key: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class Limit(_message.Message):
    __slots__ = ("id", "tenant_id", "scope", "subject_id", "kind", "period", "time_zone", "amount", "hard")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    scope: LimitScope
    subject_id: str
    kind: LimitKind
    period: LimitPeriod
    time_zone: str
    amount: int
    hard: bool
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., scope: _Optional[_Union[LimitScope, str]] = ..., subject_id: _Optional[str] = ..., kind: _Optional[_Union[LimitKind, str]] = ..., period: _Optional[_Union[LimitPeriod, str]] = ..., time_zone: _Optional[str] = ..., amount: _Optional[int] = ..., hard: _Optional[bool] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("id", "slug", "active", "allowed_regions", "allowed_tags", "drop_unknown_tags", "trace_prompts")
    ID_FIELD_NUMBER: _ClassVar[int]
    SLUG_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_REGIONS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_TAGS_FIELD_NUMBER: _ClassVar[int]
    DROP_UNKNOWN_TAGS_FIELD_NUMBER: _ClassVar[int]
    TRACE_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    slug: str
    active: bool
    allowed_regions: _containers.RepeatedScalarFieldContainer[str]
    allowed_tags: _containers.RepeatedCompositeFieldContainer[TagRule]
    drop_unknown_tags: bool
    trace_prompts: bool
    def __init__(self, id: _Optional[str] = ..., slug: _Optional[str] = ..., active: _Optional[bool] = ..., allowed_regions: _Optional[_Iterable[str]] = ..., allowed_tags: _Optional[_Iterable[_Union[TagRule, _Mapping]]] = ..., drop_unknown_tags: _Optional[bool] = ..., trace_prompts: _Optional[bool] = ...) -> None: ...

class Provider(_message.Message):
    __slots__ = ("id", "name", "kind", "base_url", "options", "enabled")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    kind: ProviderKind
    base_url: str
    options: _containers.ScalarMap[str, str]
    enabled: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[ProviderKind, str]] = ..., base_url: _Optional[str] = ..., options: _Optional[_Mapping[str, str]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class Credential(_message.Message):
    __slots__ = ("id", "tenant_id", "provider_id", "sealed_secret")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    SEALED_SECRET_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    provider_id: str
    sealed_secret: bytes
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., sealed_secret: _Optional[bytes] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("id", "provider_id", "provider_model", "region", "input_price_micros_per_mtok", "output_price_micros_per_mtok", "cached_input_price_micros_per_mtok")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MODEL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    INPUT_PRICE_MICROS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PRICE_MICROS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHED_INPUT_PRICE_MICROS_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider_id: str
    provider_model: str
    region: str
    input_price_micros_per_mtok: int
    output_price_micros_per_mtok: int
    cached_input_price_micros_per_mtok: int
    def __init__(self, id: _Optional[str] = ..., provider_id: _Optional[str] = ..., provider_model: _Optional[str] = ..., region: _Optional[str] = ..., input_price_micros_per_mtok: _Optional[int] = ..., output_price_micros_per_mtok: _Optional[int] = ..., cached_input_price_micros_per_mtok: _Optional[int] = ...) -> None: ...

class RouteTarget(_message.Message):
    __slots__ = ("model_id", "credential_id", "priority", "weight")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    credential_id: str
    priority: int
    weight: int
    def __init__(self, model_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., priority: _Optional[int] = ..., weight: _Optional[int] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("id", "tenant_id", "name", "targets", "connect_timeout_ms", "first_token_timeout_ms", "total_timeout_ms", "max_retries", "latency_aware", "drop_untranslatable", "cache_ttl_s")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    CONNECT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    LATENCY_AWARE_FIELD_NUMBER: _ClassVar[int]
    DROP_UNTRANSLATABLE_FIELD_NUMBER: _ClassVar[int]
    CACHE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    name: str
    targets: _containers.RepeatedCompositeFieldContainer[RouteTarget]
    connect_timeout_ms: int
    first_token_timeout_ms: int
    total_timeout_ms: int
    max_retries: int
    latency_aware: bool
    drop_untranslatable: bool
    cache_ttl_s: int
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., targets: _Optional[_Iterable[_Union[RouteTarget, _Mapping]]] = ..., connect_timeout_ms: _Optional[int] = ..., first_token_timeout_ms: _Optional[int] = ..., total_timeout_ms: _Optional[int] = ..., max_retries: _Optional[int] = ..., latency_aware: _Optional[bool] = ..., drop_untranslatable: _Optional[bool] = ..., cache_ttl_s: _Optional[int] = ...) -> None: ...

class VirtualKey(_message.Message):
    __slots__ = ("id", "tenant_id", "name", "key_hash", "route_ids", "expires_at_unix", "owner", "asserts_end_user", "project_id", "max_parallel", "max_body_bytes", "max_tokens", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_HASH_FIELD_NUMBER: _ClassVar[int]
    ROUTE_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    ASSERTS_END_USER_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    MAX_BODY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    name: str
    key_hash: str
    route_ids: _containers.RepeatedScalarFieldContainer[str]
    expires_at_unix: int
    owner: str
    asserts_end_user: bool
    project_id: str
    max_parallel: int
    max_body_bytes: int
    max_tokens: int
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., key_hash: _Optional[str] = ..., route_ids: _Optional[_Iterable[str]] = ..., expires_at_unix: _Optional[int] = ..., owner: _Optional[str] = ..., asserts_end_user: _Optional[bool] = ..., project_id: _Optional[str] = ..., max_parallel: _Optional[int] = ..., max_body_bytes: _Optional[int] = ..., max_tokens: _Optional[int] = ..., tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class GuardrailPolicy(_message.Message):
    __slots__ = ("id", "tenant_id", "route_id", "on_input", "on_output", "categories", "actions", "default_action", "custom_patterns", "keyword_lists")
    class ActionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    ON_INPUT_FIELD_NUMBER: _ClassVar[int]
    ON_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ACTION_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PATTERNS_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_LISTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant_id: str
    route_id: str
    on_input: bool
    on_output: bool
    categories: _containers.RepeatedScalarFieldContainer[str]
    actions: _containers.ScalarMap[str, str]
    default_action: str
    custom_patterns: _containers.RepeatedCompositeFieldContainer[CustomPatterns]
    keyword_lists: _containers.RepeatedCompositeFieldContainer[KeywordList]
    def __init__(self, id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., route_id: _Optional[str] = ..., on_input: _Optional[bool] = ..., on_output: _Optional[bool] = ..., categories: _Optional[_Iterable[str]] = ..., actions: _Optional[_Mapping[str, str]] = ..., default_action: _Optional[str] = ..., custom_patterns: _Optional[_Iterable[_Union[CustomPatterns, _Mapping]]] = ..., keyword_lists: _Optional[_Iterable[_Union[KeywordList, _Mapping]]] = ...) -> None: ...

class CustomPatterns(_message.Message):
    __slots__ = ("name", "patterns", "ignore_case", "max_len")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    IGNORE_CASE_FIELD_NUMBER: _ClassVar[int]
    MAX_LEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    patterns: _containers.RepeatedScalarFieldContainer[str]
    ignore_case: bool
    max_len: int
    def __init__(self, name: _Optional[str] = ..., patterns: _Optional[_Iterable[str]] = ..., ignore_case: _Optional[bool] = ..., max_len: _Optional[int] = ...) -> None: ...

class KeywordList(_message.Message):
    __slots__ = ("name", "words")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., words: _Optional[_Iterable[str]] = ...) -> None: ...
