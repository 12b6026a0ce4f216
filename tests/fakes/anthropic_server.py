"""A fake Anthropic Messages API: ``POST /v1/messages`` and ``/v1/messages/count_tokens`` on a
real aiohttp server on port 0.

It refuses what Anthropic refuses (noting why in ``problems``): a wrong ``x-api-key``, an
``anthropic-version`` it does not know, an ``Authorization`` header, unknown fields, a missing
``max_tokens``, a temperature outside 0-1, a first turn that is not the user's, empty text
blocks, unknown block types, ``tool_result`` outside user turns, a ``tool_use`` whose result
does not come in the next user turn; and what the adapter promises never to send: two turns of
one role in a row.
It takes what Anthropic takes beyond the basics: thinking and redacted thinking blocks (a
thinking block passed back must carry the signature this fake gave it), documents, search
results, ``cache_control`` (with ``ttl``) on blocks, tools and system, server tools,
``context_management``, ``output_config`` and ``service_tier``.
Answers are a ``message`` (a thinking block with its signature when ``Behaviour.thinking``,
then text or ``tool_use`` blocks; usage with ``cache_read_input_tokens``) or Anthropic's event
stream: ``message_start`` (with the real input token count), ``ping``, content blocks with
``thinking_delta`` / ``signature_delta`` / ``text_delta`` / ``input_json_delta``,
``message_delta``, ``message_stop``. Errors are Anthropic's ``{"type": "error", ...}``; the
in-stream fault is an ``overloaded_error`` event.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import Behaviour, FakeServer, check_keys, json_response, pieces, words

PATH = "/v1/messages"
COUNT_PATH = "/v1/messages/count_tokens"
VERSION = "2023-06-01"
VERSIONS = frozenset({VERSION, "2026-10-21"})  # what the fake knows (the SDK's included)
PARAMS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "metadata", "stop_sequences", "stream",
        "temperature", "top_k", "top_p", "tools", "tool_choice", "thinking",
        "context_management", "output_config", "service_tier", "container", "mcp_servers",
    }
)  # fmt: skip
COUNT_PARAMS = PARAMS - {"max_tokens", "stream", "metadata", "stop_sequences", "temperature",
                         "top_k", "top_p", "service_tier", "container"}  # fmt: skip
TOOL_FIELDS = frozenset({"name", "description", "input_schema", "cache_control", "type"})


def signature(thinking: str) -> str:
    """The signature this fake puts on a thinking block (checked when passed back)."""
    return "sig-" + str(sum(thinking.encode()) % 99991)


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}
STOP = {"stop": "end_turn", "length": "max_tokens"}


def prompt_tokens(body: dict[str, Any]) -> int:
    total = _text_words(body.get("system"))
    for m in body.get("messages", []):
        total += _text_words(m.get("content"))
    return total


def _text_words(content: Any) -> int:
    if isinstance(content, list):
        return sum(
            words(b.get("text") if b.get("type") == "text" else b.get("content"))
            for b in content
            if isinstance(b, dict)
        )
    return words(content)


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class FakeAnthropic(FakeServer):
    prefix = "/v1"

    def check(self, request: web.Request, body: Any) -> tuple[int, str] | None:
        if request.path not in (PATH, COUNT_PATH):
            return 404, f"unexpected path {request.path!r}"
        if request.method != "POST":
            return 405, f"unexpected method {request.method}"
        if request.headers.get("x-api-key") != self.api_key:
            return 401, f"wrong x-api-key header {request.headers.get('x-api-key')!r}"
        if "Authorization" in request.headers:
            return 400, "Anthropic takes the key in x-api-key, not Authorization"
        if request.headers.get("anthropic-version") not in VERSIONS:
            return 400, f"wrong anthropic-version {request.headers.get('anthropic-version')!r}"
        if request.content_type != "application/json":
            return 400, f"wrong Content-Type {request.content_type!r}"
        if request.path == COUNT_PATH:
            problem = check_keys(body, COUNT_PARAMS, "body")
            return (400, problem) if problem else None
        problem = check_keys(body, PARAMS, "body") or self._check_body(body)
        return (400, problem) if problem else None

    def _check_body(self, body: dict[str, Any]) -> str | None:
        if body.get("model") != self.model:
            return f"wrong model {body.get('model')!r}, expected {self.model!r}"
        if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
            return "max_tokens is required"
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1:
            return f"temperature {temperature} is outside 0-1"
        system = body.get("system")
        if not (system is None or isinstance(system, str) or all(map(_text_block, system))):
            return f"bad system {system!r}"
        for tool in body.get("tools") or ():
            if not isinstance(tool, dict) or not tool.get("name"):
                return f"bad tool {tool!r}"
            if tool.get("type") not in (None, "custom"):
                continue  # a server tool: its own fields
            if check_keys(tool, TOOL_FIELDS, "tool") or not isinstance(
                tool.get("input_schema"), dict
            ):
                return f"bad tool {tool!r}"
        choice = body.get("tool_choice")
        if choice is not None and choice.get("type") not in ("auto", "any", "tool", "none"):
            return f"bad tool_choice {choice!r}"
        return self._check_messages(body.get("messages"))

    def _check_messages(self, messages: Any) -> str | None:
        if not isinstance(messages, list) or not messages:
            return "no messages"
        pending: set[str] = set()  # tool_use ids the next user turn must answer
        previous = None
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                return f"bad role {role!r}"
            if i == 0 and role != "user":
                return "the first message must be the user's"
            if role == previous:
                return f"two {role} turns in a row"
            previous = role
            content = m.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(blocks, list) or not blocks:
                return f"bad content {content!r}"
            answered = set()
            for block in blocks:
                problem = _check_block(block, role)
                if problem:
                    return problem
                if block["type"] == "tool_result":
                    answered.add(block["tool_use_id"])
            if role == "user" and pending - answered:
                return f"tool_use ids {sorted(pending - answered)} have no tool_result"
            pending = {b["id"] for b in blocks if b["type"] == "tool_use"}
        return None

    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        kind = ERROR_TYPES.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
        return json_response(body, status, headers)

    def _usage(self, body: dict[str, Any], behaviour: Behaviour, output: int) -> dict[str, int]:
        prompt = prompt_tokens(body)
        return {
            "input_tokens": prompt - behaviour.cached_tokens,
            "output_tokens": output,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": behaviour.cached_tokens,
        }

    def _blocks(self, behaviour: Behaviour) -> list[dict[str, Any]]:
        if behaviour.tool_calls:
            return [
                {"type": "tool_use", "id": f"toolu_fake_{i}", "name": c.name, "input": c.arguments}
                for i, c in enumerate(behaviour.tool_calls)
            ]
        return [{"type": "text", "text": behaviour.reply}]

    async def answer(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        if request.path == COUNT_PATH:
            return json_response({"input_tokens": prompt_tokens(body)})
        blocks = self._blocks(behaviour)
        if behaviour.thinking:
            thought = {
                "type": "thinking",
                "thinking": behaviour.thinking,
                "signature": signature(behaviour.thinking),
            }
            blocks = [thought, *blocks]
        stop = "tool_use" if behaviour.tool_calls else STOP[behaviour.finish]
        output = sum(
            words(b.get("text") or b.get("thinking")) or len(orjson.dumps(b.get("input")).split())
            for b in blocks
        )
        message = {
            "id": f"msg_fake_{self.served}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": self._usage(body, behaviour, output),
        }
        if body.get("stream") is not True:
            return json_response(message)
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**message["usage"], "output_tokens": 1}
        events = [event("message_start", {"message": start}), event("ping", {})]
        for index, block in enumerate(blocks):
            if block["type"] == "thinking":
                events.append(_start(index, {"type": "thinking", "thinking": "", "signature": ""}))
                delta = {"type": "thinking_delta", "thinking": block["thinking"]}
                events.append(event("content_block_delta", {"index": index, "delta": delta}))
                delta = {"type": "signature_delta", "signature": block["signature"]}
                events.append(event("content_block_delta", {"index": index, "delta": delta}))
            elif block["type"] == "text":
                events.append(_start(index, {"type": "text", "text": ""}))
                for i, word in enumerate(block["text"].split()):
                    delta = {"type": "text_delta", "text": word if i == 0 else " " + word}
                    events.append(event("content_block_delta", {"index": index, "delta": delta}))
            else:
                events.append(_start(index, {**block, "input": {}}))
                for piece in pieces(orjson.dumps(block["input"]).decode()):
                    delta = {"type": "input_json_delta", "partial_json": piece}
                    events.append(event("content_block_delta", {"index": index, "delta": delta}))
            events.append(event("content_block_stop", {"index": index}))
        delta = {"stop_reason": stop, "stop_sequence": None}
        events.append(event("message_delta", {"delta": delta, "usage": {"output_tokens": output}}))
        error = {"error": {"type": "overloaded_error", "message": "Overloaded"}}
        return await self.send_events(
            request, events, behaviour, event("message_stop", {}), event("error", error)
        )


def _start(index: int, block: dict[str, Any]) -> bytes:
    return event("content_block_start", {"index": index, "content_block": block})


def _text_block(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "text" and bool(block.get("text"))


def _check_cache_control(block: dict[str, Any]) -> str | None:
    control = block.get("cache_control")
    if control is None:
        return None
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        return f"bad cache_control {control!r}"
    if control.get("ttl") not in (None, "5m", "1h"):
        return f"bad cache_control ttl {control.get('ttl')!r}"
    return None


def _check_block(block: Any, role: str) -> str | None:
    kind = block.get("type") if isinstance(block, dict) else None
    problem = _check_cache_control(block) if isinstance(block, dict) else None
    if problem:
        return problem
    if kind == "thinking" and role == "assistant":
        if block.get("signature") == signature(str(block.get("thinking", ""))):
            return None
        return f"a thinking block whose signature does not match {block!r}"
    if kind == "redacted_thinking" and role == "assistant":
        return None if block.get("data") else f"bad redacted_thinking block {block!r}"
    if kind in ("document", "search_result") and role == "user":
        return None if block.get("source") or block.get("content") else f"bad {kind} {block!r}"
    if kind in ("server_tool_use", "web_search_tool_result") and role == "assistant":
        return None
    if kind == "text":
        return None if _text_block(block) else f"empty or bad text block {block!r}"
    if kind == "image" and role == "user":
        source = block.get("source") or {}
        if source.get("type") == "base64" and source.get("media_type") and source.get("data"):
            return None
        if source.get("type") == "url" and str(source.get("url", "")).startswith("http"):
            return None
        return f"bad image block {block!r}"
    if kind == "tool_use" and role == "assistant":
        if block.get("id") and block.get("name") and isinstance(block.get("input"), dict):
            return None
        return f"bad tool_use block {block!r}"
    if kind == "tool_result" and role == "user":
        content = block.get("content")
        if block.get("tool_use_id") and (content is None or isinstance(content, str | list)):
            return None
        return f"bad tool_result block {block!r}"
    return f"a {kind!r} block is not allowed in a {role} turn"
