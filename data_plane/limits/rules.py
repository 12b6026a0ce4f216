"""Which limits a request falls under, what it may cost at worst, and the per-key caps (pure).

The worst case is what admission reserves before the request is sent: prompt tokens are at
most the body's byte count (every token stands for at least one byte of text), completion
tokens at most ``max_tokens`` (or ``DEFAULT_MAX_TOKENS`` when the client sets none), priced at
the dearest target of the route, since a fallback may land on any of them. The reservation is
reconciled to the actual usage when the request ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data_plane import errors
from data_plane.errors import ApiError
from data_plane.policy.compiled import (
    CompiledPolicy,
    LimitEntry,
    RouteEntry,
    tag_subject,
)
from data_plane.policy.keys import KeyEntry
from data_plane.policy.tags import Tags
from data_plane.types import INT64_MAX, Usage
from shared.pb import snapshot_pb2
from shared.pricing import cost_nano_usd

# Completion tokens assumed when a request sets no max_tokens and its key has no cap. A
# longer completion is still served and charged; the budget overshoots by the difference.
DEFAULT_MAX_TOKENS = 4096

BUDGET = snapshot_pb2.LIMIT_KIND_BUDGET
REQUESTS = snapshot_pb2.LIMIT_KIND_REQUESTS
TOKENS = snapshot_pb2.LIMIT_KIND_TOKENS


@dataclass(frozen=True, slots=True)
class Demand:
    """Units a request takes of each kind of limit."""

    requests: int = 1
    tokens: int = 0
    cost_nano_usd: int = 0

    def of(self, kind: int) -> int:
        if kind == BUDGET:
            return self.cost_nano_usd
        if kind == TOKENS:
            return self.tokens
        return self.requests


def applicable(
    policy: CompiledPolicy, key: KeyEntry, route: RouteEntry, tags: Tags = ()
) -> tuple[LimitEntry, ...]:
    """Tenant, project, key and route limits, in that order (broadest first), then those of
    the request's (validated) tag values."""
    by_subject = policy.limits_by_subject
    if not by_subject:
        return ()
    found: list[LimitEntry] = []
    for subject in (key.tenant_id, key.project_id, key.id, route.id):
        if subject:
            found.extend(by_subject.get(subject, ()))
    for tag_key, value in tags:
        found.extend(by_subject.get(tag_subject(key.tenant_id, f"{tag_key}={value}"), ()))
    return tuple(found)


def requested_max_tokens(body: Mapping[str, Any]) -> int | None:
    """The larger of ``max_completion_tokens`` and ``max_tokens`` (an upstream may honour
    either). The dialects have normalised both to integers in range."""
    asked = [
        value
        for value in (body.get("max_completion_tokens"), body.get("max_tokens"))
        if isinstance(value, int) and not isinstance(value, bool) and value > 0
    ]
    return max(asked, default=None)


def choices(body: Mapping[str, Any]) -> int:
    """How many completions the request asks for (``n``): each may be ``max_tokens`` long."""
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1


def check_caps(key: KeyEntry, body_bytes: int, body: Mapping[str, Any]) -> ApiError | None:
    if key.max_body_bytes and body_bytes > key.max_body_bytes:
        return errors.request_too_large(key.max_body_bytes)
    asked = requested_max_tokens(body)
    if key.max_tokens and asked is not None and asked > key.max_tokens:
        return errors.bad_request(
            f"max_tokens is {asked}; this key allows at most {key.max_tokens}.",
            param="max_tokens",
            code=errors.MAX_TOKENS_TOO_LARGE,
        )
    return None


def worst_case(
    route: RouteEntry, key: KeyEntry, body_bytes: int, body: Mapping[str, Any]
) -> Demand:
    completion = (requested_max_tokens(body) or key.max_tokens or DEFAULT_MAX_TOKENS) * choices(
        body
    )
    cost = max(
        (
            cost_nano_usd(
                prompt_tokens=body_bytes,
                completion_tokens=completion,
                cached_prompt_tokens=0,
                input_price=t.prices.input,
                output_price=t.prices.output,
                cached_input_price=t.prices.cached_input,
            )
            for t in route.targets
        ),
        default=0,
    )
    # Saturated: the figures travel in int64 lease fields (a refusal, not an overflow).
    return Demand(1, min(body_bytes + completion, INT64_MAX), min(cost, INT64_MAX))


def actual(usage: Usage, cost_nano_usd: int) -> Demand:
    return Demand(1, usage.prompt_tokens + usage.completion_tokens, cost_nano_usd)


def refusal(limit: LimitEntry, retry_after_s: int) -> ApiError:
    if limit.kind == BUDGET:
        return ApiError(
            429,
            errors.BUDGET_EXCEEDED,
            "The budget for this request's tenant, project, key, route or tag is exhausted.",
            "insufficient_quota",
        )
    unit = "requests" if limit.kind == REQUESTS else "tokens"
    return ApiError(
        429,
        errors.RATE_LIMITED,
        f"Rate limit reached ({limit.amount} {unit} per minute). Retry after {retry_after_s} s.",
        "rate_limit_error",
        retry_after=retry_after_s,
    )


def unavailable(limit: LimitEntry) -> ApiError:
    """A hard budget with no live lease: fail closed."""
    return ApiError(
        503,
        errors.LIMITS_UNAVAILABLE,
        "The budget cannot be checked right now (the control plane is unreachable); "
        "hard budgets refuse rather than risk overspending.",
        "service_unavailable",
        retry_after=5,
    )
