"""Guardrails on the request path: chat bodies in, chat bodies and chunks out (pure).

Input: the messages are scanned before routing; redaction rewrites them, a blocking finding
refuses the request with a 400 ``guardrail_blocked`` (OpenAI's own code for a prompt its
policy refuses is also a 400). Output: a completion's text is redacted in place; a blocking
finding withholds the text and ends the choice with ``finish_reason: "content_filter"``, as
Azure OpenAI does, so clients already handle it. Streamed output goes through one
``StreamGuard`` per choice: text is released only once it is known not to hold a secret.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from data_plane import errors
from data_plane.errors import ApiError
from data_plane.guardrails import CompiledGuardrails, StreamGuard, Verdict, apply, combine
from data_plane.guardrails.chat import apply_to_messages
from data_plane.guardrails.engine import CLEAN, Action
from data_plane.types import ChatRequest

CONTENT_FILTER = "content_filter"


def blocked_error(verdict: Verdict) -> ApiError:
    found = ", ".join(verdict.blocked_by)
    return ApiError(
        400,
        errors.GUARDRAIL_BLOCKED,
        f"The request was blocked by the tenant's guardrail policy (found: {found}).",
        "invalid_request_error",
        "messages",
    )


def guard_input(compiled: CompiledGuardrails, chat: ChatRequest) -> tuple[ChatRequest, Verdict]:
    """The request to forward (messages redacted when needed) and the verdict."""
    outcome = apply_to_messages(compiled, chat.body["messages"])
    if not outcome.changed:
        return chat, outcome.verdict
    return replace(chat, body={**chat.body, "messages": list(outcome.messages)}), outcome.verdict


def guard_completion(compiled: CompiledGuardrails, body: dict[str, Any]) -> Verdict:
    """Redact (or withhold, when blocked) each choice's message content, in place."""
    verdicts: list[Verdict] = []
    for choice in _choices(body):
        message = choice.get("message")
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if not isinstance(content, str) or not content:
            continue
        outcome = apply(compiled, content)
        if outcome.verdict is CLEAN:
            continue
        verdicts.append(outcome.verdict)
        if outcome.decision is Action.BLOCK:
            message["content"] = ""
            choice["finish_reason"] = CONTENT_FILTER
        elif outcome.changed:
            message["content"] = outcome.text
    return combine(verdicts) if verdicts else CLEAN


@dataclass(slots=True)
class ChunkGuard:
    """Guards the text deltas of a stream of ``chat.completion.chunk`` dicts, per choice."""

    compiled: CompiledGuardrails
    _guards: dict[int, StreamGuard] = field(default_factory=dict)

    def filter(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks to send for ``chunk``: its content replaced by what may be released; a
        choice that finishes is preceded by a chunk with the text still held. A blocked choice
        sends no more text and finishes with ``content_filter``."""
        out: list[dict[str, Any]] = []
        for choice in _choices(chunk):
            guard = self._guard(choice.get("index", 0))
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                delta["content"] = guard.feed(delta["content"])
            if choice.get("finish_reason"):
                rest = guard.finish()
                if rest:
                    out.append(_text_chunk(chunk, choice.get("index", 0), rest))
                if guard.blocked:
                    choice["finish_reason"] = CONTENT_FILTER
        if not _held_back_entirely(chunk):
            out.append(chunk)
        return out

    def finish(self, template: dict[str, Any] | None) -> list[dict[str, Any]]:
        """At the end of the stream: what is still held by choices that never finished."""
        out = []
        for index, guard in self._guards.items():
            rest = guard.finish()
            if rest and template is not None:
                out.append(_text_chunk(template, index, rest))
        return out

    @property
    def verdict(self) -> Verdict:
        return combine(g.verdict for g in self._guards.values())

    def _guard(self, index: Any) -> StreamGuard:
        key = index if isinstance(index, int) else 0
        guard = self._guards.get(key)
        if guard is None:
            guard = self._guards[key] = StreamGuard(self.compiled)
        return guard


def _choices(body: dict[str, Any]) -> Iterable[dict[str, Any]]:
    choices = body.get("choices")
    if not isinstance(choices, list):
        return ()
    return [c for c in choices if isinstance(c, dict)]


def _held_back_entirely(chunk: dict[str, Any]) -> bool:
    """A chunk that only carried text, all of it held back: nothing to send."""
    choices = chunk.get("choices")
    if chunk.get("usage") or not isinstance(choices, list) or not choices:
        return False
    return all(
        isinstance(c, dict) and not c.get("finish_reason") and c.get("delta") == {"content": ""}
        for c in choices
    )


def _text_chunk(like: dict[str, Any], index: int, text: str) -> dict[str, Any]:
    return {
        "id": like.get("id"),
        "object": "chat.completion.chunk",
        "created": like.get("created"),
        "model": like.get("model"),
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}],
    }
