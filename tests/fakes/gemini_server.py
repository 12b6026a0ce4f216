"""A fake Gemini API: ``POST /v1beta/models/<model>:generateContent``,
``:streamGenerateContent?alt=sse`` and ``:batchEmbedContents`` on a real aiohttp server.

It refuses what Gemini refuses (noting why in ``problems``): a wrong ``x-goog-api-key``, an
``Authorization`` header, unknown fields in the body or ``generationConfig``, roles other than
``user`` and ``model``, parts that are not exactly one of text / inlineData / functionCall /
functionResponse, a ``functionResponse`` whose ``response`` is not an object, a stream without
``alt=sse``. Answers are ``GenerateContentResponse``s (text or ``functionCall`` parts,
``usageMetadata`` with ``cachedContentTokenCount``); a stream is SSE ``data:`` events, one per
word, the last one with ``finishReason`` and usage, ended by closing (Gemini sends no end
marker). Errors are Google's ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.fakes.base import Behaviour, FakeServer, check_keys, json_response, words

BODY = frozenset(
    {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "safetySettings"}
)
CONFIG = frozenset(
    {
        "temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount",
        "responseMimeType", "responseSchema", "responseJsonSchema", "seed", "presencePenalty",
        "frequencyPenalty",
    }
)  # fmt: skip
PART_KINDS = frozenset({"text", "inlineData", "functionCall", "functionResponse", "fileData"})
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
FINISH = {"stop": "STOP", "length": "MAX_TOKENS"}


def prompt_tokens(body: dict[str, Any]) -> int:
    parts = list((body.get("systemInstruction") or {}).get("parts", []))
    for content in body.get("contents", []):
        parts.extend(content.get("parts", []))
    return sum(words(p.get("text")) for p in parts if isinstance(p, dict))


class FakeGemini(FakeServer):
    prefix = "/v1beta"

    def _operation(self, request: web.Request) -> str | None:
        head = f"/v1beta/models/{self.model}:"
        return request.path.removeprefix(head) if request.path.startswith(head) else None

    def check(self, request: web.Request, body: Any) -> tuple[int, str] | None:
        operation = self._operation(request)
        known = ("generateContent", "streamGenerateContent", "batchEmbedContents")
        if operation not in known:
            return 404, f"unexpected path {request.path!r}"
        if request.method != "POST":
            return 405, f"unexpected method {request.method}"
        if request.headers.get("x-goog-api-key") != self.api_key:
            return 401, f"wrong x-goog-api-key header {request.headers.get('x-goog-api-key')!r}"
        if "Authorization" in request.headers:
            return 400, "Gemini takes the key in x-goog-api-key, not Authorization"
        if request.content_type != "application/json":
            return 400, f"wrong Content-Type {request.content_type!r}"
        if operation == "streamGenerateContent" and request.query.get("alt") != "sse":
            return 400, "a stream without alt=sse"
        if operation == "batchEmbedContents":
            problem = self._check_embeddings(body)
        else:
            problem = check_keys(body, BODY, "body") or self._check_generate(body)
        return (400, problem) if problem else None

    def _check_generate(self, body: dict[str, Any]) -> str | None:
        problem = check_keys(body.get("generationConfig", {}), CONFIG, "generationConfig")
        if problem:
            return problem
        system = body.get("systemInstruction")
        if system is not None and not all(
            isinstance(p, dict) and set(p) == {"text"} for p in system.get("parts", [None])
        ):
            return f"bad systemInstruction {system!r}"
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return "no contents"
        for content in contents:
            if not isinstance(content, dict) or content.get("role") not in ("user", "model"):
                return f"bad content {content!r}"
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                return f"no parts in {content!r}"
            for part in parts:
                if not isinstance(part, dict) or len(set(part) & PART_KINDS) != 1:
                    return f"bad part {part!r}"
                response = part.get("functionResponse")
                if response is not None and not isinstance(response.get("response"), dict):
                    return f"a functionResponse's response must be an object: {part!r}"
        for tool in body.get("tools") or ():
            for declaration in tool.get("functionDeclarations", [None]):
                allowed = frozenset({"name", "description", "parametersJsonSchema"})
                if check_keys(declaration, allowed, "declaration") or not declaration.get("name"):
                    return f"bad function declaration {declaration!r}"
        mode = ((body.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode")
        if body.get("toolConfig") is not None and mode not in ("AUTO", "ANY", "NONE"):
            return f"bad toolConfig {body['toolConfig']!r}"
        return None

    def _check_embeddings(self, body: Any) -> str | None:
        problem = check_keys(body, frozenset({"requests"}), "body")
        for item in [] if problem else body.get("requests") or [None]:
            allowed = frozenset({"model", "content", "outputDimensionality", "taskType"})
            problem = problem or check_keys(item, allowed, "embed request")
            if not problem and item.get("model") != f"models/{self.model}":
                problem = f"wrong model {item.get('model')!r}"
            parts = (item.get("content") or {}).get("parts") if not problem else []
            if not problem and not (parts and all(isinstance(p.get("text"), str) for p in parts)):
                problem = f"bad embed content {item.get('content')!r}"
        return problem

    def error(self, status: int, message: str, headers: dict[str, str]) -> web.Response:
        body = {
            "error": {"code": status, "message": message, "status": STATUS.get(status, "UNKNOWN")}
        }
        return json_response(body, status, headers)

    def _usage(self, body: dict[str, Any], behaviour: Behaviour, output: int) -> dict[str, int]:
        prompt = prompt_tokens(body)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
        }
        if behaviour.cached_tokens:
            usage["cachedContentTokenCount"] = behaviour.cached_tokens
        return usage

    async def answer(
        self, request: web.Request, body: Any, behaviour: Behaviour
    ) -> web.StreamResponse:
        operation = self._operation(request)
        if operation == "batchEmbedContents":
            return self._embeddings(body)
        if behaviour.tool_calls:
            parts = [
                {"functionCall": {"name": c.name, "args": c.arguments}}
                for c in behaviour.tool_calls
            ]
            output = sum(len(orjson.dumps(c.arguments).split()) for c in behaviour.tool_calls)
        else:
            parts = [{"text": behaviour.reply}]
            output = words(behaviour.reply)
        finish = FINISH[behaviour.finish]
        meta = {"modelVersion": self.model, "responseId": f"resp-fake-{self.served}"}
        usage = self._usage(body, behaviour, output)
        if operation == "generateContent":
            candidate = {
                "content": {"role": "model", "parts": parts},
                "finishReason": finish,
                "index": 0,
            }
            return json_response({"candidates": [candidate], "usageMetadata": usage, **meta})
        if not behaviour.tool_calls:
            text = behaviour.reply.split()
            parts = [{"text": w if i == 0 else " " + w} for i, w in enumerate(text)]
        events = []
        for i, part in enumerate(parts):
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            response: dict[str, Any] = {"candidates": [candidate], **meta}
            if i == len(parts) - 1:
                candidate["finishReason"] = finish
                response["usageMetadata"] = usage
            events.append(b"data: " + orjson.dumps(response) + b"\r\n\r\n")
        error = {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}
        return await self.send_events(
            request, events, behaviour, b"", b"data: " + orjson.dumps(error) + b"\r\n\r\n"
        )

    def _embeddings(self, body: dict[str, Any]) -> web.Response:
        embeddings = []
        for index, item in enumerate(body["requests"]):
            text = item["content"]["parts"][0]["text"]
            size = item.get("outputDimensionality") or 4
            base = [float(len(text)), float(index), 0.5, -0.25]
            embeddings.append({"values": (base * (size // 4 + 1))[:size]})
        return json_response({"embeddings": embeddings})
