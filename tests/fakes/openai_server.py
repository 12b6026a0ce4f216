"""A fake provider speaking OpenAI's wire format: a real aiohttp HTTP server on port 0.

Three flavours, as the real services differ:
- "openai" (OpenAI and OpenAI-compatible servers): ``POST /v1/chat/completions``,
  ``/v1/embeddings`` and the Responses API (``POST /v1/responses``, ``GET
  /v1/responses/{id}``; see ``tests.fakes.responses_server``) with
  ``Authorization: Bearer <the credential>``.
- "azure": ``POST /openai/deployments/<deployment>/chat/completions?api-version=<v>`` (and
  ``/embeddings``) with the ``api-key`` header and no ``model`` in the body.
- "mistral": OpenAI's paths, but only Mistral's parameters (``random_seed``, no
  ``stream_options``, no ``developer`` role), tool call ids of nine letters or digits, usage
  always on the last chunk of a stream (with its choices), float embeddings only.

Every request is checked exactly as the gateway must send it and anything else is refused,
noting why in ``problems``. Answers are a ``chat.completion`` (text or tool calls, usage with
cached tokens), an SSE stream of ``chat.completion.chunk`` events (a final usage chunk when
``stream_options.include_usage`` is set) ending with ``data: [DONE]``, or an embeddings list.
Faults are injectable through ``Behaviour`` (see ``tests.fakes.base``).
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

import orjson
from aiohttp import web

from tests.fakes import responses_server
from tests.fakes.base import (
    CREATED,
    Behaviour,
    FakeServer,
    Received,
    ToolCall,
    check_keys,
    json_response,
    pieces,
    words,
)

__all__ = ["CREATED", "PATH", "Behaviour", "FakeOpenAI", "Received", "ToolCall"]

PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
AZURE_API_VERSION = "2024-10-21"
Flavour = Literal["openai", "azure", "mistral"]

OPENAI_PARAMS = frozenset(
    {
        "model", "messages", "stream", "stream_options", "temperature", "top_p", "n", "stop",
        "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
        "logit_bias", "logprobs", "top_logprobs", "user", "seed", "tools", "tool_choice",
        "parallel_tool_calls", "response_format", "service_tier", "store", "metadata",
        "reasoning_effort", "modalities", "audio", "prediction", "web_search_options",
        "safety_identifier", "prompt_cache_key", "verbosity",
    }
)  # fmt: skip
MISTRAL_PARAMS = frozenset(
    {
        "model", "messages", "temperature", "top_p", "max_tokens", "stream", "stop",
        "random_seed", "response_format", "tools", "tool_choice", "presence_penalty",
        "frequency_penalty", "n", "parallel_tool_calls", "prediction", "safe_prompt",
    }
)  # fmt: skip
EMBEDDING_PARAMS = {
    "openai": frozenset({"model", "input", "encoding_format", "dimensions", "user"}),
    "azure": frozenset({"input", "encoding_format", "dimensions", "user"}),
    "mistral": frozenset({"model", "input", "output_dimension", "output_dtype"}),
}
PART_TYPES = frozenset({"text", "image_url", "input_audio", "file"})


def prompt_tokens(body: dict[str, Any]) -> int:
    """Words across all message contents (strings and text parts): easy to check."""
    total = 0
    for m in body.get("messages", []):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            total += sum(words(p.get("text")) for p in content if isinstance(p, dict))
        else:
            total += words(content)
    return total


def usage(body: dict[str, Any], reply: str, cached: int = 0) -> dict[str, Any]:
    prompt, completion = prompt_tokens(body), len(reply.split())
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        out["prompt_tokens_details"] = {"cached_tokens": cached}
    return out


def vector(text: str, index: int, dimensions: int) -> list[float]:
    base = [float(len(text)), float(index), 0.5, -0.25]
    return (base * (dimensions // 4 + 1))[:dimensions]


def _completion_text(behaviour: Behaviour) -> str:
    """What the completion tokens are counted on: the reply, or the tool call arguments."""
    if behaviour.tool_calls:
        return " ".join(orjson.dumps(c.arguments).decode() for c in behaviour.tool_calls)
    return behaviour.reply


class FakeOpenAI(FakeServer):
    prefix = "/v1"

    def __init__(
        self,
        *,
        api_key: str,
        model: str,
        default: Behaviour | None = None,
        flavour: Flavour = "openai",
        api_version: str = AZURE_API_VERSION,
    ) -> None:
        super().__init__(api_key=api_key, model=model, default=default)
        self.flavour = flavour
        self.api_version = api_version
        self.stored: dict[str, dict[str, Any]] = {}  # Responses API: what can be read back
        if flavour == "azure":
            self.prefix = ""

    def _paths(self) -> dict[str, str]:
        if self.flavour == "azure":
            base = f"/openai/deployments/{self.model}"
            return {f"{base}/chat/completions": "chat", f"{base}/embeddings": "embeddings"}
        paths = {PATH: "chat", EMBEDDINGS_PATH: "embeddings"}
        if self.flavour == "openai":
            paths[responses_server.RESPONSES_PATH] = "responses"
        return paths

    def check(self, request: web.Request, body: Any) -> tuple[int, str] | None:
        if request.method == "GET" and request.path.startswith("/v1/responses/"):
            refusal = self._check_auth(request)
            if refusal is None and request.path.rsplit("/", 1)[1] not in self.stored:
                return 404, f"no stored response {request.path!r}"
            return (401, refusal) if refusal else None
        operation = self._paths().get(request.path)
        if operation is None:
            return 404, f"unexpected path {request.path!r}"
        if request.method != "POST":
            return 405, f"unexpected method {request.method}"
        refusal = self._check_auth(request)
        if refusal is not None:
            return 401, refusal
        if request.content_type != "application/json":
            return 400, f"wrong Content-Type {request.content_type!r}"
        if not isinstance(body, dict):
            return 400, "the body is not a JSON object"
        if self.flavour == "azure":
            if "model" in body:
                return 400, "azure takes the deployment from the URL, not 'model'"
        elif body.get("model") != self.model:
            return 400, f"wrong model {body.get('model')!r}, expected {self.model!r}"
        if operation == "embeddings":
            return self._check_embeddings(body)
        if operation == "responses":
            problem = responses_server.check(body, self.stored)
            return (400, problem) if problem else None
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return 400, "no messages"
        problem = check_keys(
            body, MISTRAL_PARAMS if self.flavour == "mistral" else OPENAI_PARAMS, "body"
        )
        problem = problem or self._check_messages(body["messages"]) or self._check_tools(body)
        return (422 if self.flavour == "mistral" else 400, problem) if problem else None

    def _check_auth(self, request: web.Request) -> str | None:
        if self.flavour == "azure":
            if request.query.get("api-version") != self.api_version:
                return f"wrong api-version {request.query.get('api-version')!r}"
            if request.headers.get("api-key") != self.api_key:
                return f"wrong api-key header {request.headers.get('api-key')!r}"
            if "Authorization" in request.headers:
                return "azure takes the key in api-key, not Authorization"
            return None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return f"wrong Authorization header {request.headers.get('Authorization')!r}"
        return None

    def _check_messages(self, messages: list[Any]) -> str | None:
        roles = {"system", "user", "assistant", "tool"}
        if self.flavour != "mistral":
            roles.add("developer")
        calls: set[str] = set()
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in roles:
                return f"bad message {m!r}"
            content = m.get("content")
            if isinstance(content, list):
                if not all(isinstance(p, dict) and p.get("type") in PART_TYPES for p in content):
                    return f"bad content parts {content!r}"
            elif not isinstance(content, str) and not (
                m["role"] == "assistant" and content is None
            ):
                return f"bad content {content!r}"
            for call in m.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if call.get("type") != "function" or not isinstance(function, dict):
                    return f"bad tool call {call!r}"
                if not isinstance(function.get("arguments"), str):
                    return f"tool call arguments must be a JSON text: {call!r}"
                if self.flavour == "mistral" and not _mistral_id(call.get("id")):
                    return f"mistral tool call ids are 9 letters or digits: {call.get('id')!r}"
                calls.add(str(call.get("id")))
            if m["role"] == "tool" and m.get("tool_call_id") not in calls:
                return f"tool message answers no earlier tool call: {m.get('tool_call_id')!r}"
        return None

    def _check_tools(self, body: dict[str, Any]) -> str | None:
        for tool in body.get("tools") or ():
            if not isinstance(tool, dict) or tool.get("type") != "function":
                return f"bad tool {tool!r}"
            if not isinstance(tool.get("function"), dict) or not tool["function"].get("name"):
                return f"bad tool function {tool!r}"
        return None

    def _check_embeddings(self, body: dict[str, Any]) -> tuple[int, str] | None:
        problem = check_keys(body, EMBEDDING_PARAMS[self.flavour], "embeddings body")
        inputs = body.get("input")
        if self.flavour == "mistral" and not (
            isinstance(inputs, list) and all(isinstance(i, str) for i in inputs)
        ):
            problem = problem or f"mistral takes a list of texts, not {inputs!r}"
        return (400, problem) if problem else None

    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        kind = "server_error" if status >= 500 else "invalid_request_error"
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
        return json_response(body, status, headers)

    async def answer(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        completion_id = f"chatcmpl-fake-{self.served}"
        if request.method == "GET":
            return json_response(self.stored[request.path.rsplit("/", 1)[1]])
        if self._paths()[request.path] == "responses":
            return await self._responses(request, body, behaviour)
        if self._paths()[request.path] == "embeddings":
            return self._embeddings(body)
        if body.get("stream") is True:
            return await self._stream(request, body, behaviour, completion_id)
        calls = [_call(i, c, self.flavour) for i, c in enumerate(behaviour.tool_calls)]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if calls else behaviour.reply,
        }
        if calls:
            message["tool_calls"] = calls
        finish = "tool_calls" if calls else behaviour.finish
        return json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": usage(body, _completion_text(behaviour), behaviour.cached_tokens),
            }
        )

    async def _responses(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour
    ) -> web.StreamResponse:
        final = responses_server.response(self.served, self.model, body, behaviour)
        if body.get("store", True) is not False:
            self.stored[final["id"]] = final
        if body.get("stream") is not True:
            return json_response(final)
        events = responses_server.events(final)
        return await self.send_events(
            request,
            events,
            behaviour,
            responses_server.closing(final, len(events)),
            responses_server.error_event(behaviour.error_after_chunks or 0),
        )

    def _embeddings(self, body: dict[str, Any]) -> web.Response:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        size = body.get("dimensions") or body.get("output_dimension") or 4
        data = []
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            values: Any = vector(text, index, size)
            if body.get("encoding_format") == "base64":
                values = base64.b64encode(struct.pack(f"<{size}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": values})
        tokens = sum(words(i) if isinstance(i, str) else len(i) for i in inputs)
        return json_response(
            {
                "object": "list",
                "data": data,
                "model": self.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Behaviour, completion_id: str
    ) -> web.StreamResponse:
        options = body.get("stream_options")
        mistral = self.flavour == "mistral"
        with_usage = mistral or (isinstance(options, dict) and options.get("include_usage") is True)
        base: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": "fp_fake",
        }
        if with_usage and not mistral:
            base["usage"] = None  # as OpenAI does on every chunk but the last
        chunks = [{**base, "choices": [_choice({"role": "assistant", "content": ""})]}]
        if behaviour.tool_calls:
            for i, call in enumerate(behaviour.tool_calls):
                full = _call(i, call, self.flavour)
                head = {**full, "index": i, "function": {**full["function"], "arguments": ""}}
                chunks.append({**base, "choices": [_choice({"tool_calls": [head]})]})
                for piece in pieces(full["function"]["arguments"]):
                    delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                    chunks.append({**base, "choices": [_choice(delta)]})
        else:
            chunks.extend(
                {**base, "choices": [_choice({"content": w if i == 0 else " " + w})]}
                for i, w in enumerate(behaviour.reply.split())
            )
        finish = "tool_calls" if behaviour.tool_calls else behaviour.finish
        counted = usage(body, _completion_text(behaviour), behaviour.cached_tokens)
        last = {**base, "choices": [_choice({}, finish)]}
        if mistral:
            last["usage"] = counted  # Mistral: usage on the last chunk, with its choices
        chunks.append(last)
        if with_usage and not mistral:
            chunks.append({**base, "choices": [], "usage": counted})
        events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks]
        error = {"error": {"message": "the fake broke mid-stream", "type": "server_error"}}
        return await self.send_events(
            request,
            events,
            behaviour,
            b"data: [DONE]\n\n",
            b"data: " + orjson.dumps(error) + b"\n\n",
        )


def _mistral_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 9 and value.isascii() and value.isalnum()


def _call(index: int, call: ToolCall, flavour: Flavour) -> dict[str, Any]:
    call_id = f"fake{index:05d}" if flavour == "mistral" else f"call_fake_{index}"
    arguments = orjson.dumps(call.arguments).decode()
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
