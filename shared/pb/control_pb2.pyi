from shared.pb import snapshot_pb2 as _snapshot_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LeaseAsk(_message.Message):
    __slots__ = ("limit_id", "window", "committed", "want")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    WANT_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    window: str
    committed: int
    want: int
    def __init__(self, limit_id: _Optional[str] = ..., window: _Optional[str] = ..., committed: _Optional[int] = ..., want: _Optional[int] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("node_id", "asks")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    asks: _containers.RepeatedCompositeFieldContainer[LeaseAsk]
    def __init__(self, node_id: _Optional[str] = ..., asks: _Optional[_Iterable[_Union[LeaseAsk, _Mapping]]] = ...) -> None: ...

class LeaseGrant(_message.Message):
    __slots__ = ("limit_id", "window", "granted", "remaining", "window_ends_in_ms", "ttl_ms", "nodes")
    LIMIT_ID_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    WINDOW_ENDS_IN_MS_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    limit_id: str
    window: str
    granted: int
    remaining: int
    window_ends_in_ms: int
    ttl_ms: int
    nodes: int
    def __init__(self, limit_id: _Optional[str] = ..., window: _Optional[str] = ..., granted: _Optional[int] = ..., remaining: _Optional[int] = ..., window_ends_in_ms: _Optional[int] = ..., ttl_ms: _Optional[int] = ..., nodes: _Optional[int] = ...) -> None: ...

class LeaseResponse(_message.Message):
    __slots__ = ("grants",)
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    grants: _containers.RepeatedCompositeFieldContainer[LeaseGrant]
    def __init__(self, grants: _Optional[_Iterable[_Union[LeaseGrant, _Mapping]]] = ...) -> None: ...

class Node(_message.Message):
    __slots__ = ("id", "region", "software_version", "boot_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    SOFTWARE_VERSION_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    region: str
    software_version: str
    boot_id: str
    def __init__(self, id: _Optional[str] = ..., region: _Optional[str] = ..., software_version: _Optional[str] = ..., boot_id: _Optional[str] = ...) -> None: ...

class SnapshotRequest(_message.Message):
    __slots__ = ("node", "version", "hash", "response_nonce", "error_detail", "accepts_parts")
    NODE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_NONCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_DETAIL_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_PARTS_FIELD_NUMBER: _ClassVar[int]
    node: Node
    version: int
    hash: str
    response_nonce: str
    error_detail: str
    accepts_parts: bool
    def __init__(self, node: _Optional[_Union[Node, _Mapping]] = ..., version: _Optional[int] = ..., hash: _Optional[str] = ..., response_nonce: _Optional[str] = ..., error_detail: _Optional[str] = ..., accepts_parts: _Optional[bool] = ...) -> None: ...

class SnapshotResponse(_message.Message):
    __slots__ = ("nonce", "snapshot", "delta", "part")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    nonce: str
    snapshot: _snapshot_pb2.Snapshot
    delta: _snapshot_pb2.SnapshotDelta
    part: SnapshotPart
    def __init__(self, nonce: _Optional[str] = ..., snapshot: _Optional[_Union[_snapshot_pb2.Snapshot, _Mapping]] = ..., delta: _Optional[_Union[_snapshot_pb2.SnapshotDelta, _Mapping]] = ..., part: _Optional[_Union[SnapshotPart, _Mapping]] = ...) -> None: ...

class SnapshotPart(_message.Message):
    __slots__ = ("total_size", "offset", "data")
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    total_size: int
    offset: int
    data: bytes
    def __init__(self, total_size: _Optional[int] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("model_id", "provider_id", "outcome")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    provider_id: str
    outcome: str
    def __init__(self, model_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., outcome: _Optional[str] = ...) -> None: ...

class UsageEvent(_message.Message):
    __slots__ = ("request_id", "ts_unix_ms", "tenant_id", "key_id", "route_id", "route_name", "model_id", "provider_id", "credential_id", "region", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "cost_nano_usd", "latency_ms", "ttft_ms", "snapshot_version", "status_code", "stream", "error_code", "subject", "fallbacks", "tags", "cache_hit", "cost_saved_nano_usd")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TS_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    TTFT_MS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    COST_SAVED_NANO_USD_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    ts_unix_ms: int
    tenant_id: str
    key_id: str
    route_id: str
    route_name: str
    model_id: str
    provider_id: str
    credential_id: str
    region: str
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    cost_nano_usd: int
    latency_ms: int
    ttft_ms: int
    snapshot_version: int
    status_code: int
    stream: bool
    error_code: str
    subject: str
    fallbacks: _containers.RepeatedCompositeFieldContainer[Attempt]
    tags: _containers.RepeatedCompositeFieldContainer[_snapshot_pb2.Tag]
    cache_hit: bool
    cost_saved_nano_usd: int
    def __init__(self, request_id: _Optional[str] = ..., ts_unix_ms: _Optional[int] = ..., tenant_id: _Optional[str] = ..., key_id: _Optional[str] = ..., route_id: _Optional[str] = ..., route_name: _Optional[str] = ..., model_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., credential_id: _Optional[str] = ..., region: _Optional[str] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., cost_nano_usd: _Optional[int] = ..., latency_ms: _Optional[int] = ..., ttft_ms: _Optional[int] = ..., snapshot_version: _Optional[int] = ..., status_code: _Optional[int] = ..., stream: _Optional[bool] = ..., error_code: _Optional[str] = ..., subject: _Optional[str] = ..., fallbacks: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., tags: _Optional[_Iterable[_Union[_snapshot_pb2.Tag, _Mapping]]] = ..., cache_hit: _Optional[bool] = ..., cost_saved_nano_usd: _Optional[int] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("chain_id", "seq", "prev_hash", "hash", "event", "decision", "reason", "categories", "guardrail_action", "content_sha256", "dropped_features")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_ACTION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FEATURES_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    seq: int
    prev_hash: str
    hash: str
    event: UsageEvent
    decision: str
    reason: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    guardrail_action: str
    content_sha256: str
    dropped_features: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, chain_id: _Optional[str] = ..., seq: _Optional[int] = ..., prev_hash: _Optional[str] = ..., hash: _Optional[str] = ..., event: _Optional[_Union[UsageEvent, _Mapping]] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., guardrail_action: _Optional[str] = ..., content_sha256: _Optional[str] = ..., dropped_features: _Optional[_Iterable[str]] = ...) -> None: ...

class UsageBatch(_message.Message):
    __slots__ = ("batch_id", "node_id", "events", "audit", "spool_depth", "health")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    SPOOL_DEPTH_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    node_id: str
    events: _containers.RepeatedCompositeFieldContainer[UsageEvent]
    audit: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    spool_depth: int
    health: _containers.RepeatedCompositeFieldContainer[VersionHealth]
    def __init__(self, batch_id: _Optional[str] = ..., node_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[UsageEvent, _Mapping]]] = ..., audit: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., spool_depth: _Optional[int] = ..., health: _Optional[_Iterable[_Union[VersionHealth, _Mapping]]] = ...) -> None: ...

class VersionHealth(_message.Message):
    __slots__ = ("version", "requests", "server_errors", "upstream_errors", "guardrail_blocks", "policy_denials")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ERRORS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_ERRORS_FIELD_NUMBER: _ClassVar[int]
    GUARDRAIL_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    POLICY_DENIALS_FIELD_NUMBER: _ClassVar[int]
    version: int
    requests: int
    server_errors: int
    upstream_errors: int
    guardrail_blocks: int
    policy_denials: int
    def __init__(self, version: _Optional[int] = ..., requests: _Optional[int] = ..., server_errors: _Optional[int] = ..., upstream_errors: _Optional[int] = ..., guardrail_blocks: _Optional[int] = ..., policy_denials: _Optional[int] = ...) -> None: ...

class UsageAck(_message.Message):
    __slots__ = ("batch_id", "accepted", "duplicate")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    accepted: int
    duplicate: bool
    def __init__(self, batch_id: _Optional[str] = ..., accepted: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...
