"""OpenAI's Responses API (``POST /v1/responses``, ``GET /v1/responses/{id}``) for the fake
OpenAI server: request checks and answers in the Responses wire format.

It refuses unknown fields, input items it does not know, a ``function_call_output`` that
answers no earlier ``function_call``, and a ``previous_response_id`` it never gave out (the
conversation lives with the upstream that answered). Answers are a ``response`` (an
``output_text`` message or ``function_call`` items, a ``reasoning`` item first when the
request asked for ``reasoning``; usage with cached tokens), or the full event stream
(``response.created``, ``response.in_progress``, output items and content parts added, text or
argument deltas, the done events, ``response.completed``), each event with its
``sequence_number``. Stored responses (``store`` is true unless false) can be read back.
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.fakes.base import CREATED, Behaviour, check_keys, pieces, words

RESPONSES_PATH = "/v1/responses"
PARAMS = frozenset(
    {
        "model", "input", "instructions", "stream", "store", "metadata", "include",
        "truncation", "service_tier", "prompt_cache_key", "previous_response_id", "tools",
        "tool_choice", "text", "max_output_tokens", "reasoning", "temperature", "top_p",
        "parallel_tool_calls", "user", "safety_identifier", "top_logprobs", "background",
        "conversation", "max_tool_calls", "stream_options", "prompt",
    }
)  # fmt: skip
ITEM_TYPES = frozenset({"message", "function_call", "function_call_output", "reasoning"})


def input_words(body: dict[str, Any]) -> int:
    total = words(body.get("instructions"))
    items = body.get("input")
    if isinstance(items, str):
        return total + words(items)
    for item in items or ():
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, list):
            total += sum(words(p.get("text")) for p in content if isinstance(p, dict))
        else:
            total += words(content) + words(item.get("output"))
    return total


def check(body: Any, stored: dict[str, dict[str, Any]]) -> str | None:
    problem = check_keys(body, PARAMS, "responses body")
    if problem:
        return problem
    previous = body.get("previous_response_id")
    if previous is not None and previous not in stored:
        return f"previous response {previous!r} not found"
    items = body.get("input")
    if not isinstance(items, str | list):
        return "input must be a string or a list of items"
    calls = {c for r in stored.values() for c in _call_ids(r["output"])} if previous else set()
    for item in items if isinstance(items, list) else ():
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind not in ITEM_TYPES:
            return f"unknown input item {item!r}"
        if kind == "function_call":
            calls.add(item.get("call_id"))
        if kind == "function_call_output" and item.get("call_id") not in calls:
            return f"function_call_output answers no earlier call: {item.get('call_id')!r}"
        if kind == "message" and item.get("role") not in (
            "user",
            "assistant",
            "system",
            "developer",
        ):
            return f"bad role in {item!r}"
    return None


def _call_ids(output: list[dict[str, Any]]) -> list[Any]:
    return [i.get("call_id") for i in output if i.get("type") == "function_call"]


def output_items(number: int, body: dict[str, Any], behaviour: Behaviour) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if body.get("reasoning"):
        items.append(
            {
                "type": "reasoning",
                "id": f"rs_fake_{number}",
                "summary": [],
                "encrypted_content": "opaque-state",
            }
        )
    if behaviour.tool_calls:
        for i, call in enumerate(behaviour.tool_calls):
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_fake_{number}_{i}",
                    "call_id": f"call_fake_{number}_{i}",
                    "name": call.name,
                    "arguments": orjson.dumps(call.arguments).decode(),
                    "status": "completed",
                }
            )
        return items
    text = {"type": "output_text", "text": behaviour.reply, "annotations": [], "logprobs": []}
    items.append(
        {
            "type": "message",
            "id": f"msg_fake_{number}",
            "status": "completed",
            "role": "assistant",
            "content": [text],
        }
    )
    return items


def response(number: int, model: str, body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    output = output_items(number, body, behaviour)
    produced = sum(
        words(i["content"][0]["text"]) if i["type"] == "message" else words(i.get("arguments"))
        for i in output
        if i["type"] != "reasoning"
    )
    prompt = input_words(body)
    cut = behaviour.finish == "length"
    return {
        "id": f"resp_fake_{number}",
        "object": "response",
        "created_at": CREATED,
        "status": "incomplete" if cut else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if cut else None,
        "instructions": body.get("instructions"),
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "store": body.get("store", True),
        "temperature": 1.0,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": 1.0,
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": behaviour.cached_tokens},
            "output_tokens": produced,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + produced,
        },
        "metadata": body.get("metadata", {}),
    }


def events(final: dict[str, Any]) -> list[bytes]:
    """The event stream that builds ``final``."""
    out: list[bytes] = []

    def emit(kind: str, **data: Any) -> None:
        event = {"type": kind, **data, "sequence_number": len(out)}
        out.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n")

    start = {**final, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(final["output"]):
        where = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            part = item["content"][0]
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            emit("response.content_part.added", **where, content_index=0, part={**part, "text": ""})
            for i, word in enumerate(part["text"].split()):
                emit(
                    "response.output_text.delta",
                    **where,
                    content_index=0,
                    delta=word if i == 0 else " " + word,
                    logprobs=[],
                )
            emit(
                "response.output_text.done",
                **where,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            emit("response.content_part.done", **where, content_index=0, part=part)
        elif item["type"] == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            for piece in pieces(item["arguments"]):
                emit("response.function_call_arguments.delta", **where, delta=piece)
            emit(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    return out


def closing(final: dict[str, Any], sequence: int) -> bytes:
    kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
    event = {"type": kind, "response": final, "sequence_number": sequence}
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def error_event(sequence: int) -> bytes:
    event = {
        "type": "error",
        "code": "server_error",
        "message": "the fake broke mid-stream",
        "param": None,
        "sequence_number": sequence,
    }
    return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
