"""Pieces shared by the adapters that translate OpenAI chat requests to another wire format
and answers back (pure: no I/O, no clock; ``created`` timestamps are passed in).

A parameter an adapter neither translates nor knows to be advisory is refused with
``Unsupported`` before anything is sent. Advisory parameters (``ADVISORY``) only label the
request for the provider's own bookkeeping and never change the answer, so a provider without
them loses nothing when they are left out; ``stream_options`` is the gateway's business (it
always meters usage) and never travels as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from data_plane.types import Usage
from data_plane.upstream.providers.base import Unsupported

ADVISORY = frozenset({"user", "metadata", "store", "service_tier", "stream_options"})

# OpenAI finish reasons.
STOP, LENGTH, TOOL_CALLS, CONTENT_FILTER = "stop", "length", "tool_calls", "content_filter"


def check_params(provider: str, body: Mapping[str, Any], handled: frozenset[str]) -> None:
    """Refuse any non-null parameter the adapter does not translate."""
    for name, value in body.items():
        if value is not None and name not in handled and name not in ADVISORY:
            raise Unsupported(provider, f"the parameter '{name}'")


def messages_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def parts_of(content: Any) -> list[dict[str, Any]]:
    """A message's content as a list of parts (a string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict)]
    return []


def text_of(content: Any) -> str:
    """The text of a content: the string, or its text parts joined."""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in parts_of(content) if p.get("type") == "text")


def max_tokens_of(body: Mapping[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def stops_of(body: Mapping[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and stop:
        return [str(s) for s in stop]
    return None


def single_choice(provider: str, body: Mapping[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise Unsupported(provider, "more than one choice ('n' > 1)")


def data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a ``data:<type>;base64,<data>`` URL, else None."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    media_type, _, encoding = head.partition(";")
    if not sep or encoding != "base64" or not media_type or not data:
        return None
    return media_type, data


def image_url_of(part: Mapping[str, Any]) -> str:
    image = part.get("image_url")
    if isinstance(image, dict):
        return str(image.get("url", ""))
    return str(image or "")


def tool_arguments(provider: str, arguments: Any) -> dict[str, Any]:
    """A tool call's arguments (a JSON text in OpenAI's format) as an object."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments or "{}")
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise Unsupported(provider, "tool call arguments that are not a JSON object")
    return parsed


def function_tools(provider: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``function`` objects of the request's tools; other tool types are refused."""
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise Unsupported(provider, "the legacy 'functions' parameters (use 'tools')")
    tools = body.get("tools")
    if tools is None:
        return []
    out = []
    for tool in tools if isinstance(tools, list) else ():
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not function:
            kind = tool.get("type") if isinstance(tool, dict) else tool
            raise Unsupported(provider, f"tools of type '{kind}'")
        out.append(function)
    return out


def named_tool_choice(choice: Any) -> str | None:
    """The function name of a ``{"type": "function", "function": {"name": ...}}`` choice."""
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        return str(name) if name else None
    return None


def tool_call(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else orjson.dumps(arguments).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def completion(
    completion_id: str,
    model: str,
    created: int,
    choices: Iterable[dict[str, Any]],
    usage: Usage,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": list(choices),
        "usage": usage.to_openai(),
    }


def message_choice(
    index: int, text: str, tool_calls: list[dict[str, Any]], finish_reason: str
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text or (None if tool_calls else ""),
        "refusal": None,  # required by OpenAI's schema, null when there is none
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"index": index, "message": message, "finish_reason": finish_reason, "logprobs": None}


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    index: int = 0,
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [
            {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        ],
    }


def usage_chunk(completion_id: str, model: str, created: int, usage: Usage) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage.to_openai(),
    }


def count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
