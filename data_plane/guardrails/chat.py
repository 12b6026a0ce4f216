"""Guardrails over the messages of a chat request (OpenAI and Anthropic shapes).

Text lives in a message's `content` when it is a string, in the `text` of content parts of
type "text" when it is a list, and in the `content` (a string or a list of parts) of Anthropic
"tool_result" parts. Other parts (images, audio, documents) are left alone. The messages are
rebuilt only when a text changed; otherwise the very same list is returned, so the caller can
forward the original body bytes without re-encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from data_plane.guardrails.engine import (
    CLEAN,
    CompiledGuardrails,
    Outcome,
    Verdict,
    apply,
    combine,
)

Message = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class MessagesOutcome:
    """`verdict` for the audit; `messages` to forward (the input object when unchanged)."""

    verdict: Verdict
    messages: Sequence[Message]
    changed: bool


def apply_to_messages(compiled: CompiledGuardrails, messages: Sequence[Message]) -> MessagesOutcome:
    verdicts: list[Verdict] = []
    rebuilt: list[Message] | None = None
    for index, message in enumerate(messages):
        new_content = _content(compiled, message.get("content"), verdicts)
        if new_content is not None:
            if rebuilt is None:
                rebuilt = list(messages)
            rebuilt[index] = {**message, "content": new_content}
    verdict = combine(verdicts) if verdicts else CLEAN
    if rebuilt is None:
        return MessagesOutcome(verdict, messages, False)
    return MessagesOutcome(verdict, rebuilt, True)


def _content(
    compiled: CompiledGuardrails, content: object, verdicts: list[Verdict]
) -> object | None:
    """The new content, or None when it is unchanged."""
    if isinstance(content, str):
        outcome = _apply(compiled, content, verdicts)
        return outcome.text if outcome.changed else None
    if not isinstance(content, list):
        return None
    parts: list[object] | None = None
    for index, part in enumerate(content):
        new_part = _part(compiled, part, verdicts)
        if new_part is not None:
            if parts is None:
                parts = list(content)
            parts[index] = new_part
    return parts


def _part(compiled: CompiledGuardrails, part: object, verdicts: list[Verdict]) -> object | None:
    """The new content part, or None when it is unchanged."""
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            return None
        outcome = _apply(compiled, text, verdicts)
        return {**part, "text": outcome.text} if outcome.changed else None
    if kind == "tool_result":
        new_content = _content(compiled, part.get("content"), verdicts)
        return None if new_content is None else {**part, "content": new_content}
    return None


def _apply(compiled: CompiledGuardrails, text: str, verdicts: list[Verdict]) -> Outcome:
    outcome = apply(compiled, text)
    if outcome.verdict is not CLEAN:
        verdicts.append(outcome.verdict)
    return outcome
