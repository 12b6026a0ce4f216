"""Anthropic's Messages API as a client dialect, without I/O. A ``/v1/messages`` request is
parsed once into an ``Inbound`` (checked only for what the gateway needs: model, max_tokens,
messages, stream) and forwarded as it is to Anthropic upstreams, thinking, signatures,
``cache_control``, documents, citations, server tools, ``context_management`` and all. For any
other provider it is translated to an OpenAI chat request (``to_chat``), and OpenAI answers
become Anthropic messages; errors are in Anthropic's format.

Translation: ``system`` is a system message; ``tool_use`` blocks are tool calls and
``tool_result`` blocks tool messages (ahead of the rest of their user turn, as OpenAI orders
them; an ``is_error`` result is prefixed "Error: ", OpenAI having no such flag); images are
data or http(s) URLs; ``stop_sequences`` is ``stop``; ``metadata.user_id`` is ``user``;
``disable_parallel_tool_use`` is ``parallel_tool_calls: false``; ``output_config.format`` (a JSON
schema) is ``response_format``. ``cache_control`` marks are
hints for Anthropic's prompt cache and are not carried (providers cache on their own). What
the OpenAI shape has no room for is ``Untranslatable`` (the target gets a 400 naming it):
extended thinking and thinking blocks, context management, documents, server tools, and any
other parameter not listed in ``PARAMS``. On a route that drops what cannot be translated
(``Native.dropped``), parameters, thinking and other assistant blocks, and server tools are
left out instead and named in the list; user content that cannot be carried (documents) is
still refused, since leaving it out would change the question.

Answers: ``input_tokens`` is the prompt less its cached part, which is
``cache_read_input_tokens``, as Anthropic counts. OpenAI does not say which stop sequence
ended an answer, so ``stop_sequence`` is always null and such an end is ``end_turn``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from data_plane import errors
from data_plane.dialects import guarding, numbers
from data_plane.dialects.anthropic_stream import AnthropicEncoder, stop_reason
from data_plane.dialects.inbound import Inbound, inbound, normalise, pick_headers
from data_plane.dialects.relay import AnthropicRelay
from data_plane.errors import ApiError
from data_plane.guardrails import CompiledGuardrails, Verdict
from data_plane.tokens import encoding
from data_plane.types import (
    ANTHROPIC_MESSAGES,
    ChatRequest,
    Untranslatable,
    Usage,
    drop_or_refuse,
)

PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
        "output_config",
    }
)
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


PASSED_HEADERS = ("anthropic-version", "anthropic-beta")
# A client sending "x-asc-input-tokens: estimate" gets, in a translated stream's message_start,
# its input tokens estimated by the shipped tokenizer instead of 0 (when the upstream's first
# chunk does not report the real count).
ESTIMATE_ASK = "x-asc-input-tokens"
GUARDED = ("system", "messages", "tools")
BOUNDS = {name: numbers.CHAT[name] for name in ("max_tokens", "temperature", "top_p", "top_k")}
FEATURES = {
    "thinking": "extended thinking ('thinking')",
    "context_management": "context management ('context_management')",
    "mcp_servers": "MCP servers ('mcp_servers')",
    "container": "code execution containers ('container')",
}


class Invalid(Exception):
    """A request that cannot be translated; becomes a 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def parse_messages_request(
    raw: bytes, request_id: str, headers: Mapping[str, str] | None = None
) -> Inbound | ApiError:
    """The request as it will be forwarded; only what the gateway needs is checked here."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return errors.bad_request("The request body is not valid JSON.", code=errors.INVALID_JSON)
    if not isinstance(body, dict):
        return errors.bad_request("The request body must be a JSON object.")
    try:
        _check(body)
    except Invalid as exc:
        return errors.bad_request(str(exc), param=exc.param)
    rewritten = normalise(body, BOUNDS)
    if isinstance(rewritten, ApiError):
        return rewritten
    metadata = body.get("metadata")
    return inbound(
        ANTHROPIC_MESSAGES,
        request_id,
        body,
        None if rewritten else raw,
        headers=pick_headers(headers or {}, PASSED_HEADERS),
        admission={"max_tokens": body["max_tokens"]},
        end_user=metadata.get("user_id") if isinstance(metadata, dict) else None,
        guarded=GUARDED,
        to_chat=to_chat,
        estimate_input=(headers or {}).get(ESTIMATE_ASK) == "estimate",
    )


def parse_count_request(raw: bytes) -> dict[str, Any] | ApiError:
    """A ``/v1/messages/count_tokens`` body: a messages request without ``max_tokens``."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return errors.bad_request("The request body is not valid JSON.", code=errors.INVALID_JSON)
    if not isinstance(body, dict):
        return errors.bad_request("The request body must be a JSON object.")
    try:
        _check({"max_tokens": 1, **body})
    except Invalid as exc:
        return errors.bad_request(str(exc), param=exc.param)
    return body


def count_request(raw: bytes, body: dict[str, Any], headers: Mapping[str, str]) -> Inbound:
    """The count request as it is forwarded to an Anthropic upstream."""
    return inbound(
        ANTHROPIC_MESSAGES,
        "",
        body,
        raw,
        headers=pick_headers(headers, PASSED_HEADERS),
        admission={},
        end_user=None,
        guarded=GUARDED,
        to_chat=to_chat,
    )


def estimate_count(
    body: Mapping[str, Any], count: Callable[[str], int] | None = None
) -> dict[str, Any]:
    """An estimated count: the request's texts by ``count`` (a tokenizer) or by characters."""
    return {"input_tokens": guarding.estimate_tokens(body, GUARDED, count)}


def _check(body: dict[str, Any]) -> None:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Invalid("'model' is required and must be a string.", "model")
    max_tokens = numbers.canonical_int(body.get("max_tokens"))
    if max_tokens is None or max_tokens < 1:
        raise Invalid("'max_tokens' is required and must be a positive integer.", "max_tokens")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("'messages' must be a non-empty array.", "messages")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise Invalid("Every message must have the role 'user' or 'assistant'.", "messages")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise Invalid("'stream' must be a boolean.", "stream")


def to_chat(
    request_id: str, body: Mapping[str, Any], dropped: list[str] | None = None
) -> ChatRequest:
    """The request as an OpenAI chat request; ``Untranslatable`` names what cannot be (or,
    with ``dropped``, what could be left out is, and named there)."""
    try:
        chat = to_openai(dict(body), dropped)
    except Invalid as exc:
        raise Untranslatable(str(exc)) from None
    return ChatRequest(request_id=request_id, body=chat, stream=chat.get("stream") is True)


def to_openai(body: dict[str, Any], dropped: list[str] | None = None) -> dict[str, Any]:
    for name, value in body.items():
        if name not in PARAMS and value is not None:
            if name == "thinking" and isinstance(value, dict) and value.get("type") == "disabled":
                continue
            drop_or_refuse(dropped, FEATURES.get(name, f"the parameter '{name}'"))
    _check(body)
    model, messages, stream = body["model"], body["messages"], body.get("stream")
    max_tokens = numbers.canonical_int(body["max_tokens"])
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "messages": []}
    system = _system_text(body.get("system"))
    if system:
        out["messages"].append({"role": "system", "content": system})
    for message in messages:
        out["messages"].extend(_message(message, dropped))
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            _bad("tools")
        functions = [_tool(t) for t in tools if _is_function(t, dropped)]
        if functions:
            out["tools"] = functions
    _tool_choice(body.get("tool_choice"), out)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    _output_config(body.get("output_config"), out)
    if stream:
        out["stream"] = True
    return out


def _bad(param: str) -> Any:
    raise Invalid(f"'{param}' is malformed.", param)


def _system_text(system: Any) -> str:
    if system is None or isinstance(system, str):
        return system or ""
    if isinstance(system, list):
        return "\n".join(_text_block(b, "system") for b in system)
    return str(_bad("system"))


def _text_block(block: Any, param: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text":
        raise Invalid(f"'{param}' may only hold text blocks.", param)
    return str(block.get("text", ""))


def _message(message: Any, dropped: list[str] | None) -> list[dict[str, Any]]:
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise Invalid("Every message must have the role 'user' or 'assistant'.", "messages")
    content = message.get("content")
    if isinstance(content, str):
        return [{"role": message["role"], "content": content}]
    if not isinstance(content, list):
        raise Invalid("A message's content must be a string or an array of blocks.", "messages")
    if message["role"] == "assistant":
        return [_assistant(content, dropped)]
    tool_messages: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "tool_result":
            tool_messages.append(_tool_result(block))
        elif kind == "text":
            parts.append({"type": "text", "text": str(block.get("text", ""))})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
        else:
            raise Untranslatable(f"content blocks of type '{kind}'")
    out = tool_messages
    if len(parts) == 1 and parts[0]["type"] == "text":
        out.append({"role": "user", "content": parts[0]["text"]})
    elif parts:
        out.append({"role": "user", "content": parts})
    return out


def _assistant(content: list[Any], dropped: list[str] | None) -> dict[str, Any]:
    texts, calls = [], []
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            function = {"name": block.get("name"), "arguments": arguments}
            calls.append({"id": block.get("id"), "type": "function", "function": function})
        else:
            drop_or_refuse(dropped, f"assistant blocks of type '{kind}'")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        out["tool_calls"] = calls
    elif out["content"] is None:
        out["content"] = ""
    return out


def _tool_result(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content")
    if isinstance(content, list):
        text = "".join(_text_block(b, "messages") for b in content)
    else:
        text = str(content or "")
    if block.get("is_error"):
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text}


def _image_url(block: dict[str, Any]) -> str:
    source = block.get("source")
    if isinstance(source, dict) and source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if isinstance(source, dict) and source.get("type") == "url":
        return str(source.get("url"))
    raise Invalid("Images must have a base64 or url source.", "messages")


def _is_function(tool: Any, dropped: list[str] | None) -> bool:
    """Whether ``tool`` is a function the model may call (a server tool is refused, or left
    out and named in ``dropped``)."""
    if isinstance(tool, dict) and tool.get("type") in (None, "custom"):
        return True
    kind = tool.get("type") if isinstance(tool, dict) else tool
    drop_or_refuse(dropped, f"server tools (type '{kind}')")
    return False


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.get("name"), "parameters": tool.get("input_schema")}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any, out: dict[str, Any]) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    mapped: Any = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
    if kind == "tool":
        mapped = {"type": "function", "function": {"name": choice.get("name")}}
    if mapped is None:
        raise Invalid(f"tool_choice of type '{kind}' is not supported.", "tool_choice")
    out["tool_choice"] = mapped
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False


def _output_config(config: Any, out: dict[str, Any]) -> None:
    """Structured output (``format``: a JSON schema) is OpenAI's ``response_format``."""
    if config is None:
        return
    if not isinstance(config, dict) or set(config) - {"format"}:
        raise Invalid("Only 'output_config.format' is supported.", "output_config")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or "schema" not in fmt:
        raise Invalid("'output_config.format' must be a json_schema format.", "output_config")
    schema = {"name": "output", "schema": fmt["schema"]}
    out["response_format"] = {"type": "json_schema", "json_schema": schema}


def usage_body(usage: Usage) -> dict[str, Any]:
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    return {
        "input_tokens": usage.prompt_tokens - cached,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def message_id(completion_id: Any) -> str:
    text = str(completion_id or "")
    return text if text.startswith("msg_") else f"msg_{text}"


def to_message(completion: dict[str, Any], route_name: str) -> dict[str, Any]:
    """An OpenAI ``chat.completion`` body as an Anthropic ``message``."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": str(message["content"])})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments if isinstance(arguments, dict) else {},
            }
        )
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": route_name,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage_body(Usage.from_openai(completion.get("usage"))),
    }


EPOCH = "1970-01-01T00:00:00Z"


def model_info(openai_model: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI model object that Anthropic's clients read too (model discovery: Claude Code
    lists a gateway's models from ``GET /v1/models``): Anthropic's fields added."""
    name = openai_model["id"]
    extra = {"type": "model", "display_name": name, "created_at": EPOCH, "lifecycle": "active"}
    return {**openai_model, **extra}


def model_list(openai_list: dict[str, Any]) -> dict[str, Any]:
    data = [model_info(m) for m in openai_list["data"]]
    ids = [m["id"] for m in data]
    return {
        **openai_list,
        "data": data,
        "has_more": False,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }


def error_body(error: ApiError) -> dict[str, Any]:
    """Anthropic's error shape; ``code`` carries the gateway's stable reason code."""
    kind = ERROR_TYPES.get(error.status)
    if kind is None:
        kind = "api_error" if error.status >= 500 else "invalid_request_error"
    return {
        "type": "error",
        "error": {"type": kind, "message": error.message, "code": error.code},
    }


class AnthropicDialect:
    """Anthropic's Messages API as the pipeline's client dialect (``pipeline.Dialect``)."""

    @staticmethod
    def parse(raw: bytes, request_id: str, headers: Mapping[str, str]) -> Inbound | ApiError:
        return parse_messages_request(raw, request_id, headers)

    @staticmethod
    def guard_answer(compiled: CompiledGuardrails, body: dict[str, Any]) -> Verdict:
        return guarding.guard_message(compiled, body)

    @staticmethod
    def relay(request: Inbound, compiled: CompiledGuardrails | None) -> AnthropicRelay:
        return AnthropicRelay(error_body, compiled)

    @staticmethod
    def error_body(error: ApiError) -> dict[str, Any]:
        return error_body(error)

    @staticmethod
    def answer(completion: dict[str, Any], route_name: str, request: Inbound) -> dict[str, Any]:
        return to_message(completion, route_name)

    @staticmethod
    def encoder(request: Inbound, route_name: str) -> AnthropicEncoder:
        estimate = None
        if request.estimate_input:  # the shipped tokenizer, loaded by the handler
            estimate = guarding.estimate_tokens(request.body, GUARDED, encoding.loaded())
        message_id = f"msg_{request.native.request_id}"
        return AnthropicEncoder(message_id, route_name, error_body, input_estimate=estimate)


ANTHROPIC = AnthropicDialect()
