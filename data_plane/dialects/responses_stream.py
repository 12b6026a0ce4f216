"""Chat completion chunks as the Responses API's event stream (pure, stateful per stream), and
the ``response`` object both the stream and a complete answer end with.

The sequence: ``response.created`` and ``response.in_progress`` (status ``in_progress``, no
output yet); for text, ``response.output_item.added`` (a message item), its
``response.content_part.added`` (an ``output_text`` part), ``response.output_text.delta``s,
then ``response.output_text.done``, ``response.content_part.done`` and
``response.output_item.done``; for each tool call, ``response.output_item.added`` (a
``function_call`` item), ``response.function_call_arguments.delta``s, then
``response.function_call_arguments.done`` and ``response.output_item.done``; last
``response.completed`` (or ``response.incomplete`` when the answer was cut by its token limit
or a content filter) with the whole response and its usage. Every event carries a
``sequence_number``; each is an SSE ``event:`` line and a ``data:`` line. Objects and events
follow both OpenAI's description and the Open Responses specification
(``tests/providers/test_open_responses.py``).
"""

from __future__ import annotations

from typing import Any

import orjson

from data_plane.dialects.inbound import Inbound
from data_plane.errors import ApiError
from data_plane.types import Usage

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def usage_object(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_prompt_tokens,
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def response_object(
    request: Inbound,
    route_name: str,
    output: list[dict[str, Any]],
    created: int,
    finish_reason: Any,
    usage: Usage | None,
    status: str | None = None,
) -> dict[str, Any]:
    """A ``response`` built by the gateway: the request's settings echoed as OpenAI does, with
    every field the Open Responses specification requires. ``completed_at`` is null: the
    gateway stamps no completion time of its own (this core reads no clock), and the
    provider's answer says only when it was created."""
    body = request.body
    reason = INCOMPLETE.get(str(finish_reason))
    if status is None:
        status = "incomplete" if reason else "completed"
    instructions = body.get("instructions")
    return {
        "id": f"resp_{request.native.request_id}",
        "object": "response",
        "created_at": created,
        "completed_at": None,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if reason and status == "incomplete" else None,
        "instructions": instructions if isinstance(instructions, str | list) else None,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": route_name,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "presence_penalty": body.get("presence_penalty") or 0.0,
        "frequency_penalty": body.get("frequency_penalty") or 0.0,
        "top_logprobs": body.get("top_logprobs") or 0,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": _function_tools(body.get("tools")),
        "max_tool_calls": body.get("max_tool_calls"),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage_object(usage) if usage is not None else None,
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "background": False,
        "service_tier": "default",
        "metadata": body.get("metadata") or {},
    }


def _function_tools(tools: Any) -> list[dict[str, Any]]:
    """The request's function tools as a response lists them (the model was offered only
    those: a translation carries no other)."""
    return [
        {
            "type": "function",
            "name": tool.get("name"),
            "description": tool.get("description"),
            "parameters": tool.get("parameters"),
            "strict": tool.get("strict"),
        }
        for tool in (tools if isinstance(tools, list) else ())
        if isinstance(tool, dict) and tool.get("type") == "function"
    ]


class ResponsesEncoder:
    def __init__(self, request: Inbound, route_name: str) -> None:
        self.request = request
        self.route_name = route_name
        self._sequence = 0
        self._created = 0
        self._started = False
        self._output: list[dict[str, Any]] = []
        self._text: dict[str, Any] | None = None  # the open message item
        self._calls: dict[int, dict[str, Any]] = {}  # chat tool call index -> item
        self._open_call: dict[str, Any] | None = None
        self._finish: Any = None
        self._usage: Usage | None = None

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        data = {"type": kind, **data, "sequence_number": self._sequence}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

    def _response(self, status: str) -> dict[str, Any]:
        return response_object(
            self.request,
            self.route_name,
            self._output,
            self._created,
            self._finish,
            self._usage if status != "in_progress" else None,
            status,
        )

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        response = self._response("in_progress")
        return [
            self._event("response.created", {"response": response}),
            self._event("response.in_progress", {"response": response}),
        ]

    def chunk(self, chunk: dict[str, Any]) -> bytes:
        if not self._created and isinstance(chunk.get("created"), int):
            self._created = chunk["created"]
        out = self._start()
        if chunk.get("usage"):
            self._usage = Usage.from_openai(chunk["usage"])
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                out.extend(self._text_delta(str(delta["content"])))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    out.extend(self._call_delta(call))
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return b"".join(out)

    def _text_delta(self, text: str) -> list[bytes]:
        out = self._close_call()
        if self._text is None:
            item: dict[str, Any] = {
                "type": "message",
                "id": f"msg_{self.request.native.request_id}",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            self._text = item
            self._output.append(item)
            index = len(self._output) - 1
            added = {"output_index": index, "item": item}
            out.append(self._event("response.output_item.added", added))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append(self._event("response.content_part.added", self._where(part=part)))
            item["content"] = [dict(part)]
        self._text["content"][0]["text"] += text
        out.append(self._event("response.output_text.delta", self._where(delta=text, logprobs=[])))
        return out

    def _where(self, **data: Any) -> dict[str, Any]:
        assert self._text is not None
        index = self._output.index(self._text)
        return {"item_id": self._text["id"], "output_index": index, "content_index": 0, **data}

    def _close_text(self) -> list[bytes]:
        item = self._text
        if item is None:
            return []
        part = item["content"][0]
        out = [
            self._event("response.output_text.done", self._where(text=part["text"], logprobs=[])),
            self._event("response.content_part.done", self._where(part=part)),
        ]
        item["status"] = "completed"
        index = self._output.index(item)
        out.append(self._event("response.output_item.done", {"output_index": index, "item": item}))
        self._text = None
        return out

    def _call_delta(self, call: dict[str, Any]) -> list[bytes]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        out: list[bytes] = []
        item = self._calls.get(index)
        if item is None:
            out.extend(self._close_text())
            out.extend(self._close_call())
            call_id = str(call.get("id"))
            item = {
                "type": "function_call",
                "id": f"fc_{call_id}",
                "call_id": call_id,
                "name": str(function.get("name")),
                "arguments": "",
                "status": "in_progress",
            }
            self._calls[index] = self._open_call = item
            self._output.append(item)
            position = len(self._output) - 1
            added = {"output_index": position, "item": item}
            out.append(self._event("response.output_item.added", added))
        arguments = function.get("arguments")
        if arguments:
            item["arguments"] += str(arguments)
            data: dict[str, Any] = {"item_id": item["id"], "output_index": self._output.index(item)}
            data["delta"] = str(arguments)
            out.append(self._event("response.function_call_arguments.delta", data))
        return out

    def _close_call(self) -> list[bytes]:
        item = self._open_call
        if item is None:
            return []
        self._open_call = None
        item["status"] = "completed"
        index = self._output.index(item)
        where = {"item_id": item["id"], "output_index": index}
        return [
            self._event(
                "response.function_call_arguments.done",
                {**where, "name": item["name"], "arguments": item["arguments"]},
            ),
            self._event("response.output_item.done", {"output_index": index, "item": item}),
        ]

    def end(self) -> bytes:
        out = self._start()
        out.extend(self._close_text())
        out.extend(self._close_call())
        response = self._response("completed" if self._finish not in INCOMPLETE else "incomplete")
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, {"response": response}))
        return b"".join(out)

    def error(self, error: ApiError) -> bytes:
        """An ``error`` event: its fields flat, as OpenAI sends them, and also under
        ``error``, as the Open Responses specification has them."""
        data = {"code": error.code, "message": error.message, "param": error.param}
        return self._event("error", {**data, "error": error.body()["error"]})
