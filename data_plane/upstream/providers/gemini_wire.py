"""OpenAI chat requests as Gemini ``generateContent`` requests, and Gemini answers and
streamed responses as OpenAI completions and chunks (pure).

Requests: system and developer messages become ``systemInstruction``; assistant turns are
role ``model``; tool calls are ``functionCall`` parts and tool messages ``functionResponse``
parts (named after the call they answer: Gemini matches results by function name); images
must be base64 data URLs (``inlineData``); JSON mode is ``responseMimeType``
application/json, with ``responseJsonSchema`` for a schema; ``n`` is ``candidateCount``.
Gemini does not number its function calls, so calls get ids ``call_<n>`` in order.

Answers: ``promptTokenCount`` includes cached content (``cachedContentTokenCount``), as
OpenAI's ``prompt_tokens`` includes ``cached_tokens``; thinking tokens count as output.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from data_plane.types import Usage
from data_plane.upstream.providers.base import ProviderError, Unsupported
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
    stops_of,
    text_of,
    tool_arguments,
    tool_call,
    usage_chunk,
)

NAME = "gemini"
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
        "n",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
    }
)
GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
FINISH = {
    "STOP": STOP,
    "MAX_TOKENS": LENGTH,
    "SAFETY": CONTENT_FILTER,
    "RECITATION": CONTENT_FILTER,
    "BLOCKLIST": CONTENT_FILTER,
    "PROHIBITED_CONTENT": CONTENT_FILTER,
    "SPII": CONTENT_FILTER,
    "IMAGE_SAFETY": CONTENT_FILTER,
}
AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def request(body: Mapping[str, Any]) -> dict[str, Any]:
    check_params(NAME, body, HANDLED)
    if body.get("parallel_tool_calls") is False:
        raise Unsupported(NAME, "parallel_tool_calls false")
    system, contents = _contents(messages_of(body))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = {wire: body[name] for name, wire in GENERATION.items() if body.get(name) is not None}
    max_tokens = max_tokens_of(body)
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stops = stops_of(body)
    if stops:
        config["stopSequences"] = stops
    config.update(_response_format(body.get("response_format")))
    if config:
        out["generationConfig"] = config
    tools = function_tools(NAME, body)
    if tools:
        out["tools"] = [{"functionDeclarations": [_declaration(f) for f in tools]}]
        choice = _tool_config(body.get("tool_choice"))
        if choice is not None:
            out["toolConfig"] = {"functionCallingConfig": choice}
    return out


def _response_format(response_format: Any) -> dict[str, Any]:
    if not isinstance(response_format, dict) or response_format.get("type", "text") == "text":
        return {}
    if response_format["type"] == "json_object":
        return {"responseMimeType": "application/json"}
    if response_format["type"] == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema:
            out["responseJsonSchema"] = schema
        return out
    raise Unsupported(NAME, f"response_format '{response_format['type']}'")


def _declaration(function: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _tool_config(choice: Any) -> dict[str, Any] | None:
    name = named_tool_choice(choice)
    if name is not None:
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if choice is None:
        return None
    if choice not in modes:
        raise Unsupported(NAME, f"tool_choice {choice!r}")
    return {"mode": modes[choice]}


def _contents(
    messages: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name

    def push(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for message in messages:
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            system.extend({"text": t} for t in [text_of(content)] if t)
        elif role == "user":
            push("user", _parts(content))
        elif role == "assistant":
            parts = _parts(content)
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                names[str(call.get("id"))] = str(function.get("name"))
                args = tool_arguments(NAME, function.get("arguments"))
                parts.append({"functionCall": {"name": function.get("name"), "args": args}})
            push("model", parts)
        elif role == "tool":
            name = names.get(str(message.get("tool_call_id")))
            if name is None:
                raise Unsupported(NAME, "a tool result without the assistant call it answers")
            push("user", [{"functionResponse": {"name": name, "response": _response(content)}}])
        else:
            raise Unsupported(NAME, f"messages with the role '{role}'")
    return system, contents


def _response(content: Any) -> dict[str, Any]:
    """Gemini wants an object: a JSON object result as is, anything else as its text."""
    text = text_of(content)
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"content": text}


def _parts(content: Any) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for part in parts_of(content):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            inline = data_url(image_url_of(part))
            if inline is None:
                raise Unsupported(NAME, "image URLs (send images as base64 data URLs)")
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime = AUDIO_TYPES.get(str(audio.get("format")))
            if mime is None:
                raise Unsupported(NAME, f"audio in the format {audio.get('format')!r}")
            parts.append({"inlineData": {"mimeType": mime, "data": audio.get("data")}})
        else:
            raise Unsupported(NAME, f"content parts of type '{kind}'")
    return parts


def usage_of(metadata: Any) -> Usage:
    if not isinstance(metadata, dict):
        return Usage()
    output = count(metadata.get("candidatesTokenCount")) + count(metadata.get("thoughtsTokenCount"))
    return Usage(
        count(metadata.get("promptTokenCount")),
        output,
        count(metadata.get("cachedContentTokenCount")),
    )


def _candidate_parts(candidate: Mapping[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _finish(reason: Any, has_calls: bool) -> str:
    finish = FINISH.get(str(reason), STOP)
    return TOOL_CALLS if has_calls and finish == STOP else finish


def answer(
    response: dict[str, Any], model: str, request_id: str, created: int
) -> tuple[dict[str, Any], Usage]:
    """A ``GenerateContentResponse`` as an OpenAI ``chat.completion`` body and its usage."""
    candidates = response.get("candidates")
    usage = usage_of(response.get("usageMetadata"))
    completion_id = str(response.get("responseId") or f"chatcmpl-{request_id}")
    if not isinstance(candidates, list) or not candidates:
        if response.get("promptFeedback"):  # the prompt itself was blocked
            choice = message_choice(0, "", [], CONTENT_FILTER)
            return completion(completion_id, model, created, [choice], usage), usage
        raise ProviderError("bad_response", status=502, retryable=True)
    choices, call_number = [], 0
    for position, candidate in enumerate(candidates):
        texts, calls = [], []
        for part in _candidate_parts(candidate):
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
            elif isinstance(part.get("functionCall"), dict):
                call = part["functionCall"]
                call_id = str(call.get("id") or f"call_{call_number}")
                calls.append(tool_call(call_id, str(call.get("name")), call.get("args") or {}))
                call_number += 1
        finish = _finish(candidate.get("finishReason"), bool(calls))
        index = candidate.get("index", position)
        choices.append(message_choice(index, "".join(texts), calls, finish))
    return completion(completion_id, model, created, choices, usage), usage


class StreamTranslator:
    """Streamed ``GenerateContentResponse``s, fed one at a time, as OpenAI chunks. Gemini
    ends a stream by closing it; ``finish`` turns the end into the finish and usage chunks,
    and refuses an end that came before any candidate finished (a cut stream)."""

    def __init__(self, model: str, request_id: str, created: int) -> None:
        self.model = model
        self.id = f"chatcmpl-{request_id}"
        self.created = created
        self._usage = Usage()
        self._started: set[int] = set()
        self._finished: dict[int, str] = {}
        self._calls: dict[int, int] = {}  # candidate -> tool calls so far
        self._call_number = 0

    def feed(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        if response.get("usageMetadata"):
            self._usage = usage_of(response["usageMetadata"])
        out: list[dict[str, Any]] = []
        candidates = response.get("candidates")
        if not isinstance(candidates, list):
            if response.get("promptFeedback"):
                out.append(chunk(self.id, self.model, self.created, {}, CONTENT_FILTER))
                self._finished[0] = CONTENT_FILTER
            return out
        for position, candidate in enumerate(c for c in candidates if isinstance(c, dict)):
            index = candidate.get("index", position)
            out.extend(self._parts(index, _candidate_parts(candidate)))
            if candidate.get("finishReason"):
                finish = _finish(candidate["finishReason"], bool(self._calls.get(index)))
                self._finished[index] = finish
                out.append(chunk(self.id, self.model, self.created, {}, finish, index))
        return out

    def _parts(self, index: int, parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for part in parts:
            delta: dict[str, Any]
            if isinstance(part.get("text"), str) and not part.get("thought"):
                delta = {"content": part["text"]}
            elif isinstance(part.get("functionCall"), dict):
                call = part["functionCall"]
                call_id = str(call.get("id") or f"call_{self._call_number}")
                self._call_number += 1
                position = self._calls[index] = self._calls.get(index, 0) + 1
                args = call.get("args") or {}
                delta = {
                    "tool_calls": [
                        {"index": position - 1, **tool_call(call_id, str(call.get("name")), args)}
                    ]
                }
            else:
                continue
            if index not in self._started:
                self._started.add(index)
                delta = {"role": "assistant", **delta}
            out.append(chunk(self.id, self.model, self.created, delta, None, index))
        return out

    def finish(self) -> list[dict[str, Any]]:
        if not self._finished:
            raise ProviderError(
                "stream_truncated", status=502, retryable=True, message="no candidate finished"
            )
        return [usage_chunk(self.id, self.model, self.created, self._usage)]


def embeddings_request(texts: list[str], model: str, dimensions: Any) -> dict[str, Any]:
    requests = []
    for text in texts:
        item: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            item["outputDimensionality"] = dimensions
        requests.append(item)
    return {"requests": requests}


def embeddings_answer(
    response: dict[str, Any], model: str, texts: list[str]
) -> tuple[dict[str, Any], Usage]:
    """``batchEmbedContents`` answers carry no token counts: the prompt is estimated at four
    characters a token (at least one a text), OpenAI's rule of thumb."""
    embeddings = response.get("embeddings")
    if not isinstance(embeddings, list) or len(embeddings) != len(texts):
        raise ProviderError("bad_response", status=502, retryable=True)
    data = []
    for index, item in enumerate(embeddings):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list):
            raise ProviderError("bad_response", status=502, retryable=True)
        data.append({"object": "embedding", "index": index, "embedding": values})
    metadata = response.get("usageMetadata")
    reported = count(metadata.get("promptTokenCount")) if isinstance(metadata, dict) else 0
    tokens = reported or sum(max(1, -(-len(t) // 4)) for t in texts)
    usage = Usage(tokens, 0)
    body = {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return body, usage
