"""Relaying a stream the upstream sent in the client's own format (pure, stateful per
stream): each event is passed on as the upstream's bytes, unless the output guardrail
changes its text or the client did not ask for what the gateway asked for on its behalf
(OpenAI chat's usage chunk).

With an output guardrail, text deltas go through one ``StreamGuard`` per text block (an
Anthropic content block, a Responses content part, an OpenAI choice): text is released only
once it is known not to hold what the guardrail redacts or blocks, and the text still held
is released before the block ends. A blocked block sends no more text and the answer ends
as refused (``stop_reason: "refusal"``, ``finish_reason: "content_filter"``, a Responses
status ``incomplete`` for ``content_filter``); the done events' full texts are guarded the
same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from data_plane.dialects import guarding
from data_plane.errors import ApiError
from data_plane.guardrails import CompiledGuardrails, StreamGuard, Verdict, apply, combine
from data_plane.guardrails.enforce import ChunkGuard
from data_plane.guardrails.engine import CLEAN
from data_plane.types import Event

Body = dict[str, Any]
SSE_DONE = b"data: [DONE]\n\n"


def sse_event(chunk: Body) -> bytes:
    """An OpenAI stream chunk as a server-sent event."""
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def sse(event: Event) -> bytes:
    """The event as the upstream sent it."""
    if event.name:
        return b"event: " + event.name + b"\ndata: " + event.data + b"\n\n"
    return b"data: " + event.data + b"\n\n"


def named(name: str, body: Body) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(body) + b"\n\n"


class Relay:
    """Passes events on untouched; the dialect relays below guard and filter."""

    def __init__(self, error_body: Callable[[ApiError], Body]) -> None:
        self._error_body = error_body

    def event(self, event: Event) -> bytes:
        return sse(event)

    def end(self) -> bytes:
        return b""  # the upstream's own end event was relayed

    def error(self, error: ApiError) -> bytes:
        return named("error", self._error_body(error))

    @property
    def verdict(self) -> Verdict:
        return CLEAN


class _Guards:
    """One StreamGuard per text block, by key."""

    def __init__(self, compiled: CompiledGuardrails) -> None:
        self.compiled = compiled
        self.guards: dict[Any, StreamGuard] = {}

    def get(self, key: Any) -> StreamGuard:
        guard = self.guards.get(key)
        if guard is None:
            guard = self.guards[key] = StreamGuard(self.compiled)
        return guard

    @property
    def blocked(self) -> bool:
        return any(g.blocked for g in self.guards.values())

    @property
    def verdict(self) -> Verdict:
        return combine(g.verdict for g in self.guards.values())


class _GuardedRelay(Relay):
    """A relay whose events go through ``guarded`` when an output guardrail is on."""

    def __init__(
        self, error_body: Callable[[ApiError], Body], compiled: CompiledGuardrails | None
    ) -> None:
        super().__init__(error_body)
        self._guards = _Guards(compiled) if compiled is not None else None

    def event(self, event: Event) -> bytes:
        if self._guards is None or event.body is None:
            return sse(event)
        return self.guarded(self._guards, event, event.body)

    def guarded(self, guards: _Guards, event: Event, body: Body) -> bytes:
        raise NotImplementedError

    @property
    def verdict(self) -> Verdict:
        return self._guards.verdict if self._guards is not None else CLEAN


class AnthropicRelay(_GuardedRelay):
    def guarded(self, guards: _Guards, event: Event, body: Body) -> bytes:
        kind = body.get("type")
        index = body.get("index")
        delta = body.get("delta")
        if kind == "content_block_delta" and isinstance(delta, dict):
            if delta.get("type") != "text_delta":
                return sse(event)
            released = guards.get(index).feed(str(delta.get("text", "")))
            return named(kind, {**body, "delta": {**delta, "text": released}}) if released else b""
        if kind == "content_block_stop" and index in guards.guards:
            rest = guards.guards[index].finish()
            head = b""
            if rest:
                text = {"type": "text_delta", "text": rest}
                head = named("content_block_delta", {"type": "content_block_delta",
                                                     "index": index, "delta": text})  # fmt: skip
            return head + sse(event)
        if kind == "message_delta" and guards.blocked and isinstance(delta, dict):
            return named(kind, {**body, "delta": {**delta, "stop_reason": "refusal"}})
        return sse(event)


class ChatRelay(Relay):
    """OpenAI chat chunks; the usage-only chunk is dropped when the client did not ask for
    usage (the gateway always asks)."""

    def __init__(
        self,
        error_body: Callable[[ApiError], Body],
        compiled: CompiledGuardrails | None,
        with_usage: bool,
    ) -> None:
        super().__init__(error_body)
        self._guard = ChunkGuard(compiled) if compiled is not None else None
        self._with_usage = with_usage
        self._last: Body | None = None

    def event(self, event: Event) -> bytes:
        chunk = event.body
        if chunk is None:  # [DONE]: what a guard still holds goes first
            return self._held() + SSE_DONE
        self._last = chunk
        if not self._with_usage and chunk.get("usage"):
            if not chunk.get("choices"):
                return b""
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        elif self._guard is None:
            return sse(event)
        if self._guard is None:
            return sse_event(chunk)
        return b"".join(sse_event(out) for out in self._guard.filter(chunk))

    def _held(self) -> bytes:
        if self._guard is None:
            return b""
        return b"".join(sse_event(out) for out in self._guard.finish(self._last))

    def end(self) -> bytes:
        return b""

    def error(self, error: ApiError) -> bytes:
        return sse_event(self._error_body(error))

    @property
    def verdict(self) -> Verdict:
        return self._guard.verdict if self._guard is not None else CLEAN


RESPONSE_DONE = frozenset({"response.completed", "response.incomplete"})


class ResponsesRelay(_GuardedRelay):
    """Responses API events: text deltas guarded per (item, content part); the done
    events' full texts are guarded with the whole-text check."""

    def guarded(self, guards: _Guards, event: Event, body: Body) -> bytes:
        kind = str(body.get("type"))
        key = (body.get("item_id"), body.get("content_index"))
        if kind == "response.output_text.delta":
            released = guards.get(key).feed(str(body.get("delta", "")))
            return named(kind, {**body, "delta": released}) if released else b""
        if kind == "response.output_text.done":
            rest = guards.get(key).finish()
            head = (
                named(
                    "response.output_text.delta",
                    {**body, "type": "response.output_text.delta", "delta": rest},
                )
                if rest
                else b""
            )
            return head + named(kind, {**body, "text": self._text(body.get("text"))})
        if kind == "response.content_part.done" and isinstance(body.get("part"), dict):
            part = {**body["part"], "text": self._text(body["part"].get("text"))}
            return named(kind, {**body, "part": part})
        if kind == "response.output_item.done" and isinstance(body.get("item"), dict):
            self._guard_item(body["item"])
            return named(kind, body)
        if kind in RESPONSE_DONE and isinstance(body.get("response"), dict):
            response = body["response"]  # parsed for this relay: changed in place
            for part in guarding.output_texts(response):
                part["text"] = self._text(part.get("text"))
            if guards.blocked:
                guarding.withhold(response)
                kind = "response.incomplete"
                return named(kind, {**body, "type": kind, "response": response})
            return named(kind, {**body, "response": response})
        return sse(event)

    def _text(self, text: Any) -> Any:
        if not isinstance(text, str) or self._guards is None:
            return text
        if self._guards.blocked:
            return ""
        outcome = apply(self._guards.compiled, text)
        return outcome.text

    def _guard_item(self, item: Body) -> None:
        content = item.get("content")
        if isinstance(content, list):
            item["content"] = [
                {**p, "text": self._text(p.get("text"))} if isinstance(p, dict) else p
                for p in content
            ]
