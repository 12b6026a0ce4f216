"""Guardrails of the data plane: classify text (PII, PHI, secrets, custom patterns) and act.

Pure code on the request path: `compile_policy` once per snapshot, then `apply` (input text),
`apply_to_messages` (a chat request's messages) and `StreamGuard` (streamed output).
"""

from data_plane.guardrails.chat import MessagesOutcome, apply_to_messages
from data_plane.guardrails.detectors import BUILTIN_CATEGORIES
from data_plane.guardrails.engine import (
    Action,
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    GuardrailPolicyError,
    KeywordList,
    Outcome,
    ScanResult,
    Verdict,
    apply,
    combine,
    compile_policy,
    scan,
)
from data_plane.guardrails.spans import Span
from data_plane.guardrails.stream import StreamGuard

__all__ = [
    "BUILTIN_CATEGORIES",
    "Action",
    "CompiledGuardrails",
    "CustomRegex",
    "GuardrailPolicy",
    "GuardrailPolicyError",
    "KeywordList",
    "MessagesOutcome",
    "Outcome",
    "ScanResult",
    "Span",
    "StreamGuard",
    "Verdict",
    "apply",
    "apply_to_messages",
    "combine",
    "compile_policy",
    "scan",
]
