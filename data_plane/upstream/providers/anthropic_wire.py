"""OpenAI chat requests as Anthropic Messages API requests, and Anthropic answers and stream
events as OpenAI completions and chunks (pure).

Requests: system and developer messages become the top-level ``system``; tool calls become
``tool_use`` blocks and tool messages ``tool_result`` blocks in a user turn (consecutive turns
of one role are merged, as Anthropic requires); images travel as base64 or URL sources;
``max_tokens`` is required by Anthropic, so the provider option ``default_max_tokens``
(``DEFAULT_MAX_TOKENS``) fills in for a request without one. Refused: JSON mode, several
choices, a temperature above 1 (Anthropic's range is 0-1), seeds, penalties, logprobs.

Answers: ``input_tokens`` excludes cached input on Anthropic, so OpenAI's ``prompt_tokens``
is input + cache reads + cache writes, with cache reads as ``cached_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_plane.types import Usage
from data_plane.upstream.providers.base import ProviderError, Unsupported
from data_plane.upstream.providers.native import anthropic_usage
from data_plane.upstream.providers.translate import (
    CONTENT_FILTER,
    LENGTH,
    STOP,
    TOOL_CALLS,
    check_params,
    chunk,
    completion,
    count,
    data_url,
    function_tools,
    image_url_of,
    max_tokens_of,
    message_choice,
    messages_of,
    named_tool_choice,
    parts_of,
    single_choice,
    stops_of,
    text_of,
    tool_arguments,
    tool_call,
    usage_chunk,
)

NAME = "anthropic"
DEFAULT_MAX_TOKENS = 4096
HANDLED = frozenset(
    {
        "model",
        "messages",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "n",
        "user",
    }
)
FINISH = {
    "end_turn": STOP,
    "stop_sequence": STOP,
    "pause_turn": STOP,
    "max_tokens": LENGTH,
    "model_context_window_exceeded": LENGTH,
    "tool_use": TOOL_CALLS,
    "refusal": CONTENT_FILTER,
}


def request(
    body: Mapping[str, Any], model: str, stream: bool, default_max_tokens: int
) -> dict[str, Any]:
    check_params(NAME, body, HANDLED)
    single_choice(NAME, body)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type", "text") != "text":
        raise Unsupported(NAME, f"response_format '{response_format.get('type')}' (JSON mode)")
    system, messages = _messages(messages_of(body))
    out: dict[str, Any] = {
        "model": model,
        "max_tokens": max_tokens_of(body) or default_max_tokens,
        "messages": messages,
    }
    if system:
        out["system"] = system
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature > 1:
        raise Unsupported(NAME, "a temperature above 1")
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = stops_of(body)
    if stops:
        out["stop_sequences"] = stops
    tools = function_tools(NAME, body)
    if tools:
        out["tools"] = [_tool(f) for f in tools]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    if stream:
        out["stream"] = True
    return out


def _tool(function: Mapping[str, Any]) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        tool["description"] = function["description"]
    return tool


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    name = named_tool_choice(choice)
    if name is not None:
        out: dict[str, Any] = {"type": "tool", "name": name}
    elif choice in (None, "auto"):
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    else:
        raise Unsupported(NAME, f"tool_choice {choice!r}")
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    elif choice is None:
        return None
    return out


def _messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def push(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend({"type": "text", "text": t} for t in [text_of(content)] if t)
        elif role == "user":
            push("user", _blocks(content))
        elif role == "assistant":
            blocks = _blocks(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": tool_arguments(NAME, function.get("arguments")),
                    }
                )
            push("assistant", blocks)
        elif role == "tool":
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": message.get("tool_call_id"),
            }
            text = text_of(content)
            if text:
                result["content"] = text
            push("user", [result])
        else:
            raise Unsupported(NAME, f"messages with the role '{role}'")
    return system, out


def _blocks(content: Any) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts_of(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            url = image_url_of(part)
            inline = data_url(url)
            if inline is not None:
                source = {"type": "base64", "media_type": inline[0], "data": inline[1]}
            elif url.startswith(("http://", "https://")):
                source = {"type": "url", "url": url}
            else:
                raise Unsupported(NAME, "image URLs other than http(s) and base64 data URLs")
            blocks.append({"type": "image", "source": source})
        else:
            raise Unsupported(NAME, f"content parts of type '{kind}'")
    return blocks


def answer(message: dict[str, Any], created: int) -> tuple[dict[str, Any], Usage]:
    """An Anthropic ``message`` as an OpenAI ``chat.completion`` body and its usage."""
    content = message.get("content")
    if message.get("type") != "message" or not isinstance(content, list):
        raise ProviderError("bad_response", status=502, retryable=True)
    texts, calls = [], []
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            texts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_use":
            calls.append(
                tool_call(str(block.get("id")), str(block.get("name")), block.get("input"))
            )
    usage = anthropic_usage(message.get("usage"))
    finish = FINISH.get(str(message.get("stop_reason")), STOP)
    choice = message_choice(0, "".join(texts), calls, finish)
    model = str(message.get("model", ""))
    return completion(str(message.get("id", "")), model, created, [choice], usage), usage


class StreamTranslator:
    """Anthropic stream events, fed one at a time, as OpenAI chunks. ``done`` turns true on
    ``message_stop``; a stream that ends before is truncated."""

    def __init__(self, created: int) -> None:
        self.created = created
        self.id = ""
        self.model = ""
        self.done = False
        self._input: dict[str, Any] = {}
        self._output = 0
        self._finish = STOP
        self._tools: dict[int, int] = {}  # content block index -> tool call index

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return chunk(self.id, self.model, self.created, delta, finish)

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id, self.model = str(message.get("id", "")), str(message.get("model", ""))
            self._input = message.get("usage") or {}
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tools[event.get("index", 0)] = len(self._tools)
                call = tool_call(str(block.get("id")), str(block.get("name")), "")
                return [self._chunk({"tool_calls": [{"index": index, **call}]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            return self._delta(event.get("index", 0), event.get("delta") or {})
        if kind == "message_delta":
            delta, usage = event.get("delta") or {}, event.get("usage") or {}
            self._finish = FINISH.get(str(delta.get("stop_reason")), STOP)
            self._output = count(usage.get("output_tokens")) or self._output
            self._input = {**self._input, **{k: v for k, v in usage.items() if "input" in k}}
            return []
        if kind == "message_stop":
            self.done = True
            usage = anthropic_usage({**self._input, "output_tokens": self._output})
            return [
                self._chunk({}, self._finish),
                usage_chunk(self.id, self.model, self.created, usage),
            ]
        if kind == "error":
            error = event.get("error") or {}
            message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            raise ProviderError("stream_error", status=502, retryable=True, message=message)
        return []  # ping, content_block_stop, and events added later

    def _delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": str(delta.get("text", ""))})]
        if kind == "input_json_delta" and index in self._tools:
            arguments = {"arguments": str(delta.get("partial_json", ""))}
            return [
                self._chunk({"tool_calls": [{"index": self._tools[index], "function": arguments}]})
            ]
        return []  # thinking and citations have no OpenAI equivalent (never asked for)
