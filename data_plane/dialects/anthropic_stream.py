"""OpenAI ``chat.completion.chunk``s as Anthropic stream events (pure, stateful per stream).

Anthropic's sequence: ``message_start``; per content block ``content_block_start``, its
``content_block_delta``s and ``content_block_stop``; ``message_delta`` with the stop reason
and usage; ``message_stop``. Text opens a text block, each tool call a ``tool_use`` block
whose arguments arrive as ``input_json_delta``s. OpenAI reports usage at the end, so
``message_start`` carries the real input tokens only when the upstream's first chunk reports
them; otherwise the estimate the client asked for (``input_estimate``, by the shipped
tokenizer), or else 0. ``message_delta`` carries the real (cumulative) counts, which Anthropic's
SDK applies over those. Each event is an SSE ``event:`` line and a ``data:`` line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from data_plane.errors import ApiError
from data_plane.types import Usage

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any) -> str:
    return STOP_REASONS.get(str(finish_reason), "end_turn")


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class AnthropicEncoder:
    def __init__(
        self,
        message_id: str,
        model: str,
        error_body: Callable[[ApiError], dict[str, Any]],
        *,
        input_estimate: int | None = None,
    ) -> None:
        self.message_id = message_id
        self._input_estimate = input_estimate
        self.model = model
        self._error_body = error_body
        self._started = False
        self._blocks = 0  # blocks opened so far
        self._open: tuple[str, int] | None = None  # ("text", -1) or ("tool", tool index)
        self._tools: dict[int, int] = {}  # OpenAI tool call index -> block index
        self._stop = "end_turn"
        self._usage = Usage()

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        out: list[bytes] = []
        if chunk.get("usage"):
            self._usage = Usage.from_openai(chunk["usage"])
        if not self._started:
            self._started = True
            out.append(self._message_start())
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if text:
                out.extend(self._text(str(text)))
            for call in delta.get("tool_calls") or ():
                out.extend(self._tool(call))
            if choice.get("finish_reason"):
                self._stop = stop_reason(choice["finish_reason"])
        return b"".join(out)

    def _message_start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": self._start_usage(),
        }
        return event("message_start", {"type": "message_start", "message": message})

    def _start_usage(self) -> dict[str, int]:
        """The upstream's input count when it already gave one, else the estimate asked for,
        else 0; never output tokens (none yet)."""
        usage = self._usage
        if usage.prompt_tokens:
            cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
            return {
                "input_tokens": usage.prompt_tokens - cached,
                "output_tokens": 0,
                "cache_read_input_tokens": cached,
            }
        return {"input_tokens": self._input_estimate or 0, "output_tokens": 0}

    def _text(self, text: str) -> list[bytes]:
        out = []
        if self._open is None or self._open[0] != "text":
            out.extend(self._close())
            out.append(self._start({"type": "text", "text": ""}))
            self._open = ("text", -1)
        delta = {"type": "text_delta", "text": text}
        out.append(self._delta(self._blocks - 1, delta))
        return out

    def _tool(self, call: Any) -> list[bytes]:
        if not isinstance(call, dict):
            return []
        index = call.get("index", 0)
        function = call.get("function") or {}
        out = []
        if index not in self._tools:
            out.extend(self._close())
            block = {"type": "tool_use", "id": call.get("id"), "name": function.get("name")}
            out.append(self._start({**block, "input": {}}))
            self._tools[index] = self._blocks - 1
            self._open = ("tool", index)
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": str(arguments)}
            out.append(self._delta(self._tools[index], delta))
        return out

    def _start(self, block: dict[str, Any]) -> bytes:
        index = self._blocks
        self._blocks += 1
        data = {"type": "content_block_start", "index": index, "content_block": block}
        return event("content_block_start", data)

    def _delta(self, index: int, delta: dict[str, Any]) -> bytes:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        return event("content_block_delta", data)

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        index = self._blocks - 1
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def end(self) -> bytes:
        out = [] if self._started else [self._message_start()]
        self._started = True
        out.extend(self._close())
        usage = self._usage
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": self._stop, "stop_sequence": None},
            "usage": {
                "input_tokens": usage.prompt_tokens - cached,
                "output_tokens": usage.completion_tokens,
                "cache_read_input_tokens": cached,
            },
        }
        out.append(event("message_delta", delta))
        out.append(event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, error: ApiError) -> bytes:
        return event("error", self._error_body(error))
