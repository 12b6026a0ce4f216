"""Usage events: what one request did, as a shared.pb UsageEvent (pure).

A ``RequestRecord`` is filled in as a request moves along the path (principal, route, the
target that answered, failed attempts, tokens, status) and turned into exactly one event at
the end by ``build_event``. Cost is computed here, from the serving model's snapshot prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from data_plane import errors
from data_plane.guardrails import Verdict
from data_plane.limits.leases import Admission
from data_plane.policy.auth import Principal
from data_plane.policy.compiled import RouteEntry
from data_plane.policy.tags import Tags
from data_plane.types import INT64_MAX, UINT32_MAX, Target, Usage
from shared.pb import control_pb2, snapshot_pb2
from shared.pricing import cost_nano_usd


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    ts_unix_ms: int
    started: float  # time.monotonic() at arrival, for latency and time to first token
    snapshot_version: int = 0
    principal: Principal | None = None
    route_name: str = ""
    route: RouteEntry | None = None
    stream: bool = False
    target: Target | None = None
    usage: Usage = field(default_factory=Usage)
    ttft_ms: int = 0
    status: int = 200
    error_code: str = ""
    fallbacks: list[control_pb2.Attempt] = field(default_factory=list)
    # Guardrail verdicts of the input and the output (categories, never text).
    verdicts: list[Verdict] = field(default_factory=list)
    # What a translation for the target left out, on a route that drops rather than refuses.
    dropped: list[str] = field(default_factory=list)
    # Budget and rate-limit reservations to settle when the request ends.
    admission: Admission = field(default_factory=Admission)
    # Answered from the response cache: no target, cost 0; what the answer cost when paid.
    cache_hit: bool = False
    cost_saved_nano_usd: int = 0
    # The request's validated tags (data_plane/policy/tags.py), sorted by key.
    tags: Tags = ()

    def failed_attempt(self, target: Target, outcome: str) -> None:
        self.fallbacks.append(
            control_pb2.Attempt(
                model_id=target.model_id, provider_id=target.provider_id, outcome=outcome
            )
        )


def cost_of(target: Target | None, usage: Usage) -> int:
    if target is None:
        return 0
    cost = cost_nano_usd(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_prompt_tokens=usage.cached_prompt_tokens,
        input_price=target.prices.input,
        output_price=target.prices.output,
        cached_input_price=target.prices.cached_input,
    )
    return min(cost, INT64_MAX)  # what the event's cost field holds


def build_event(record: RequestRecord, latency_ms: int) -> control_pb2.UsageEvent:
    """The usage event of a request that got past authentication."""
    principal, route, target, usage = record.principal, record.route, record.target, record.usage
    return control_pb2.UsageEvent(
        request_id=record.request_id,
        ts_unix_ms=record.ts_unix_ms,
        tenant_id=principal.tenant.id if principal else "",
        key_id=principal.key.id if principal else "",
        subject=principal.subject if principal else "",
        route_id=route.id if route else "",
        route_name=route.name if route else record.route_name,
        model_id=target.model_id if target else "",
        provider_id=target.provider_id if target else "",
        credential_id=target.credential_id if target else "",
        region=target.region if target else "",
        prompt_tokens=min(usage.prompt_tokens, UINT32_MAX),  # a provider's sum may pass it
        completion_tokens=min(usage.completion_tokens, UINT32_MAX),
        cached_prompt_tokens=min(usage.cached_prompt_tokens, UINT32_MAX),
        cost_nano_usd=cost_of(target, usage),
        latency_ms=min(max(0, latency_ms), UINT32_MAX),
        ttft_ms=min(max(0, record.ttft_ms), UINT32_MAX),
        snapshot_version=record.snapshot_version,
        status_code=record.status,
        stream=record.stream,
        error_code=record.error_code,
        fallbacks=record.fallbacks,
        cache_hit=record.cache_hit,
        cost_saved_nano_usd=min(record.cost_saved_nano_usd, INT64_MAX),
        tags=[snapshot_pb2.Tag(key=k, value=v) for k, v in record.tags],
    )


def estimate_usage(body: Mapping[str, Any], completion_chunks: int) -> Usage:
    """Usage of a stream cut short before the provider reported it: one token per content
    chunk received, and the prompt at about four characters a token (OpenAI's rule of
    thumb), at least one per message."""
    messages = body.get("messages")
    chars, count = 0, 0
    for message in messages if isinstance(messages, list) else ():
        count += 1
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return Usage(max(count, -(-chars // 4)), completion_chunks)


UPSTREAM_FAILURES = frozenset(
    {
        errors.UPSTREAM_ERROR,
        errors.UPSTREAM_REJECTED,
        errors.UPSTREAM_RATE_LIMITED,
        errors.NO_TARGET_AVAILABLE,
        errors.NO_HEALTHY_TARGET,
    }
)
POLICY_DENIALS = frozenset(
    {
        errors.MODEL_NOT_ALLOWED,
        errors.MODEL_NOT_FOUND,
        errors.TENANT_INACTIVE,
        errors.EXPIRED_API_KEY,
        errors.BUDGET_EXCEEDED,
        errors.RATE_LIMITED,
        errors.MAX_TOKENS_TOO_LARGE,
        errors.REQUEST_TOO_LARGE,
    }
)


def version_health(events: Iterable[control_pb2.UsageEvent]) -> list[control_pb2.VersionHealth]:
    """What a batch's requests met, by the snapshot version that served them: the signals a
    staged rollout compares (see control_plane/rollouts/machine.py)."""
    out: dict[int, control_pb2.VersionHealth] = {}
    for event in events:
        h = out.get(event.snapshot_version)
        if h is None:
            h = out[event.snapshot_version] = control_pb2.VersionHealth(
                version=event.snapshot_version
            )
        h.requests += 1
        h.server_errors += event.status_code >= 500
        h.upstream_errors += event.error_code in UPSTREAM_FAILURES
        h.guardrail_blocks += event.error_code == errors.GUARDRAIL_BLOCKED
        h.policy_denials += event.error_code in POLICY_DENIALS
    return [out[v] for v in sorted(out)]
