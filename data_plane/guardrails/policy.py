"""Guardrail policies from the snapshot, compiled once per snapshot (pure, no I/O).

A route's own policy replaces its tenant's; ``for_route`` finds the one that applies. A policy
that does not compile (unknown category, bad pattern) makes the whole snapshot invalid, so the
node NACKs it and keeps enforcing the previous one: a guardrail never silently switches off.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from data_plane.guardrails.detectors import BUILTIN_CATEGORIES
from data_plane.guardrails.engine import (
    Action,
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    GuardrailPolicyError,
    KeywordList,
    compile_policy,
)
from shared.pb import snapshot_pb2


class GuardrailSnapshotError(ValueError):
    """A guardrail policy of the snapshot cannot be compiled."""


@dataclass(frozen=True, slots=True)
class Guard:
    """The compiled policy of one tenant or route, and where it applies."""

    policy_id: str
    compiled: CompiledGuardrails
    on_input: bool
    on_output: bool
    # Of the policy's whole content, the same on every node: the response cache keys answers
    # by the output policy they passed (a changed policy is not served an old answer).
    fingerprint: str = ""


def compile_guardrails(
    policies: Iterable[snapshot_pb2.GuardrailPolicy],
) -> dict[tuple[str, str], Guard]:
    """Guards by (tenant id, route id), route id "" for a tenant-wide policy."""
    guards: dict[tuple[str, str], Guard] = {}
    for pb in policies:
        scope = (pb.tenant_id, pb.route_id)  # one per scope: shared.consistency checks it
        try:
            compiled = compile_policy(_policy(pb))
        except (GuardrailPolicyError, ValueError) as exc:
            raise GuardrailSnapshotError(f"guardrail {pb.id!r}: {exc}") from exc
        fingerprint = hashlib.sha256(pb.SerializeToString(deterministic=True)).hexdigest()
        guards[scope] = Guard(pb.id, compiled, pb.on_input, pb.on_output, fingerprint)
    return guards


def for_route(
    guards: Mapping[tuple[str, str], Guard], tenant_id: str, route_id: str
) -> Guard | None:
    return guards.get((tenant_id, route_id)) or guards.get((tenant_id, ""))


def _policy(pb: snapshot_pb2.GuardrailPolicy) -> GuardrailPolicy:
    return GuardrailPolicy(
        enabled=frozenset(pb.categories) if pb.categories else BUILTIN_CATEGORIES,
        actions={category: Action(action) for category, action in pb.actions.items()},
        default_action=Action(pb.default_action or Action.REDACT),
        custom_regexes=tuple(
            CustomRegex(c.name, tuple(c.patterns), c.ignore_case, c.max_len or 64)
            for c in pb.custom_patterns
        ),
        keyword_lists=tuple(KeywordList(k.name, tuple(k.words)) for k in pb.keyword_lists),
    )
