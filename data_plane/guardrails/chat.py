"""Guardrails over the messages of a chat request (OpenAI and Anthropic shapes).

Text lives in a message's `content` when it is a string, and in the `text` of content parts
of type "text" when it is a list. Other parts (images, audio, tool results in non-text form)
are left alone. The messages are rebuilt only when a text changed; otherwise the very same
list is returned, so the caller can forward the original body bytes without re-encoding.
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
        if not isinstance(part, Mapping) or part.get("type") != "text":
            continue
        text = part.get("text")
        if not isinstance(text, str):
            continue
        outcome = _apply(compiled, text, verdicts)
        if outcome.changed:
            if parts is None:
                parts = list(content)
            parts[index] = {**part, "text": outcome.text}
    return parts


def _apply(compiled: CompiledGuardrails, text: str, verdicts: list[Verdict]) -> Outcome:
    outcome = apply(compiled, text)
    if outcome.verdict is not CLEAN:
        verdicts.append(outcome.verdict)
    return outcome
