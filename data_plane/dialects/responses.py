"""OpenAI's Responses API (``/v1/responses``) as a client dialect, without I/O.

A request is parsed once into an ``Inbound`` and forwarded as it is to OpenAI-family upstreams
that speak it (``previous_response_id``, ``store``, reasoning items, built-in tools and all).
For every other provider (and the mock) it is translated to a chat request (``to_chat``):
``instructions`` is a system message; input items are messages (``input_text`` /
``output_text`` parts as text, ``input_image`` as an image URL), ``function_call`` items
assistant tool calls and ``function_call_output`` items tool messages; reasoning items passed
back are dropped (they are the upstream's own encrypted state, meaningless elsewhere);
function tools are chat tools; ``text.format`` is ``response_format``; ``max_output_tokens``
is ``max_tokens``; ``store``, ``metadata``, ``include``, ``truncation``, ``service_tier`` and
``prompt_cache_key`` are advisory and left out. ``Untranslatable`` (a 400 naming it):
``previous_response_id`` and ``conversation`` (the conversation is kept by the upstream that
answered, and a translated request has none), built-in tools, other input item types. On a
route that drops what cannot be translated (``Native.dropped``), unknown parameters and
built-in tools are left out instead and named in the list (the stateful parameters and input
items are still refused: leaving them out would change the conversation).

Answers from the other providers (chat completions and chunks) become a ``response`` object
and its event stream (``responses_stream``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from data_plane import errors
from data_plane.dialects import guarding, numbers
from data_plane.dialects.inbound import Inbound, inbound, normalise, pick_headers
from data_plane.dialects.relay import ResponsesRelay
from data_plane.dialects.responses_stream import ResponsesEncoder, response_object
from data_plane.errors import ApiError
from data_plane.guardrails import CompiledGuardrails, Verdict
from data_plane.types import (
    OPENAI_RESPONSES,
    ChatRequest,
    Untranslatable,
    Usage,
    drop_or_refuse,
)

GUARDED = ("instructions", "input", "tools")
BOUNDS = {
    "max_output_tokens": numbers.CHAT["max_tokens"],
    "temperature": numbers.CHAT["temperature"],
    "top_p": numbers.CHAT["top_p"],
    "top_logprobs": numbers.CHAT["top_logprobs"],
}
ADVISORY = frozenset(
    {
        "model", "input", "instructions", "stream", "store", "metadata", "include",
        "truncation", "service_tier", "prompt_cache_key", "stream_options", "background",
    }
)  # fmt: skip
COPIED = ("temperature", "top_p", "parallel_tool_calls", "top_logprobs")
TRANSLATED = frozenset(
    {"tools", "tool_choice", "text", "max_output_tokens", "reasoning", "user", "safety_identifier"}
)
STATEFUL = {
    "previous_response_id": "previous_response_id (the conversation is kept by the upstream "
    "that answered; only OpenAI-family targets keep it)",
    "conversation": "conversation (kept by OpenAI-family upstreams only)",
}


def parse_responses_request(
    raw: bytes, request_id: str, headers: Mapping[str, str]
) -> Inbound | ApiError:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return errors.bad_request("The request body is not valid JSON.", code=errors.INVALID_JSON)
    if not isinstance(body, dict):
        return errors.bad_request("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return errors.bad_request("'model' is required and must be a string.", param="model")
    value = body.get("input")
    if not isinstance(value, str | list) and not body.get("previous_response_id"):
        return errors.bad_request("'input' must be a string or an array of items.", param="input")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        return errors.bad_request("'stream' must be a boolean.", param="stream")
    rewritten = normalise(body, BOUNDS)
    if isinstance(rewritten, ApiError):
        return rewritten
    user = body.get("safety_identifier") or body.get("user")
    return inbound(
        OPENAI_RESPONSES,
        request_id,
        body,
        None if rewritten else raw,
        headers=pick_headers(headers, ("openai-beta",)),
        admission={"max_tokens": body.get("max_output_tokens")},
        end_user=user,
        guarded=GUARDED,
        to_chat=to_chat,
    )


def to_chat(
    request_id: str, body: Mapping[str, Any], dropped: list[str] | None = None
) -> ChatRequest:
    """The request as a chat request; ``Untranslatable`` names what cannot be (or, with
    ``dropped``, what could be left out is, and named there)."""
    for name, value in body.items():
        if value is None or name in ADVISORY or name in COPIED:
            continue
        if name in STATEFUL:
            raise Untranslatable(STATEFUL[name])
        if name not in TRANSLATED:
            drop_or_refuse(dropped, f"the parameter '{name}'")
    chat: dict[str, Any] = {"model": body["model"], "messages": _messages(body)}
    for name in COPIED:
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str):
        chat["user"] = user
    tools = body.get("tools")
    if isinstance(tools, list):
        functions = [_tool(t) for t in tools if _is_function(t, dropped)]
        if functions:
            chat["tools"] = functions
    choice = _tool_choice(body.get("tool_choice"))
    if choice is not None:
        chat["tool_choice"] = choice
    _text_format(body.get("text"), chat)
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return ChatRequest(request_id=request_id, body=chat, stream=body.get("stream") is True)


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        out.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        return [*out, {"role": "user", "content": items}]
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            raise Untranslatable("input items that are not objects")
        kind = item.get("type", "message")
        if kind == "message":
            out.append(_message(item))
        elif kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments", "")},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text(output)
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "reasoning":
            continue  # the upstream's own state: meaningless to another provider
        else:
            raise Untranslatable(f"input items of type '{kind}'")
    return out


def _message(item: Mapping[str, Any]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise Untranslatable(f"messages with the role '{role}'")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            image = {"url": part["image_url"], "detail": part.get("detail") or "auto"}
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise Untranslatable(f"content parts of type '{kind}'")
    if role != "user" or all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p.get("text", "") for p in parts)}
    return {"role": role, "content": parts}


def _text(parts: Any) -> str:
    if not isinstance(parts, list):
        return str(parts or "")
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _is_function(tool: Any, dropped: list[str] | None) -> bool:
    """Whether ``tool`` is a function tool (a built-in one is refused, or left out and named
    in ``dropped``)."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return True
    kind = tool.get("type") if isinstance(tool, dict) else tool
    drop_or_refuse(dropped, f"built-in tools (type '{kind}')")
    return False


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {"name": tool.get("name"), "parameters": tool.get("parameters") or {}}
    for name in ("description", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise Untranslatable(f"tool_choice of type '{kind}'")


def _text_format(text: Any, chat: dict[str, Any]) -> None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return
    if fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if fmt.get("type") != "json_schema":
        raise Untranslatable(f"text formats of type '{fmt.get('type')}'")
    schema = {"name": fmt.get("name") or "output", "schema": fmt.get("schema") or {}}
    if fmt.get("strict") is not None:
        schema["strict"] = fmt["strict"]
    chat["response_format"] = {"type": "json_schema", "json_schema": schema}


def to_response(completion: dict[str, Any], request: Inbound, route_name: str) -> dict[str, Any]:
    """A chat completion as a ``response`` object."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    rid = request.native.request_id
    if message.get("content"):
        output.append(message_item(rid, str(message["content"]), "completed"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            function_item(
                str(call.get("id")), str(function.get("name")), str(function.get("arguments"))
            )
        )
    return response_object(
        request,
        route_name,
        output,
        completion.get("created") or 0,
        choice.get("finish_reason"),
        Usage.from_openai(completion.get("usage")),
    )


def message_item(request_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{request_id}",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def function_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


class ResponsesDialect:
    """OpenAI's Responses API as the pipeline's client dialect (``pipeline.Dialect``);
    errors are OpenAI's."""

    @staticmethod
    def parse(raw: bytes, request_id: str, headers: Mapping[str, str]) -> Inbound | ApiError:
        return parse_responses_request(raw, request_id, headers)

    @staticmethod
    def error_body(error: ApiError) -> dict[str, Any]:
        return error.body()

    @staticmethod
    def guard_answer(compiled: CompiledGuardrails, body: dict[str, Any]) -> Verdict:
        return guarding.guard_response(compiled, body)

    @staticmethod
    def relay(request: Inbound, compiled: CompiledGuardrails | None) -> ResponsesRelay:
        return ResponsesRelay(ApiError.body, compiled)

    @staticmethod
    def answer(completion: dict[str, Any], route_name: str, request: Inbound) -> dict[str, Any]:
        return to_response(completion, request, route_name)

    @staticmethod
    def encoder(request: Inbound, route_name: str) -> ResponsesEncoder:
        return ResponsesEncoder(request, route_name)


RESPONSES = ResponsesDialect()
