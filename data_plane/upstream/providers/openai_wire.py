"""Request bodies for the providers that speak OpenAI's wire format (pure).

- openai and openai_compatible: the client's body with ``model`` replaced, untouched
  otherwise (an OpenAI-compatible server may take extensions such as ``top_k``; OpenAI
  itself does not, so there ``top_k`` is refused up front rather than by a 400 upstream).
- azure_openai: the same body without ``model`` (the deployment in the URL decides).
- mistral: its own parameter set (``random_seed`` for ``seed``, ``max_tokens`` only, no
  ``stream_options``: it always reports usage), ``developer`` messages as ``system``, and
  tool call ids of nine letters or digits, as Mistral insists (other ids are mapped to one
  deterministically, so a call and its result still match).
When streaming, providers are always asked for usage, which the gateway meters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from data_plane.upstream.providers.base import Unsupported
from data_plane.upstream.providers.translate import ADVISORY

OPENAI_ONLY_REFUSED = frozenset({"top_k"})

MISTRAL_PARAMS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "parallel_tool_calls",
        "prediction",
        "safe_prompt",
    }
)
MISTRAL_RENAMES = {"seed": "random_seed", "max_completion_tokens": "max_tokens"}
_MISTRAL_ID = re.compile(r"[A-Za-z0-9]{9}")
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def openai_chat(
    body: Mapping[str, Any], model: str | None, stream: bool, *, strict: str = ""
) -> dict[str, Any]:
    """``strict`` names a real OpenAI service ("openai", "azure_openai"): parameters it
    does not have are refused. ``model`` None leaves the field out (Azure)."""
    if strict:
        for name in OPENAI_ONLY_REFUSED:
            if body.get(name) is not None:
                raise Unsupported(strict, f"the parameter '{name}'")
    out = {**body, "stream": stream}
    if model is None:
        out.pop("model", None)
    else:
        out["model"] = model
    if stream:
        out["stream_options"] = {"include_usage": True}
    else:
        out.pop("stream_options", None)
    return out


def mistral_chat(body: Mapping[str, Any], model: str, stream: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in body.items():
        if value is None or name in ADVISORY or name == "stream":
            continue
        wire = MISTRAL_RENAMES.get(name, name)
        if wire not in MISTRAL_PARAMS:
            raise Unsupported("mistral", f"the parameter '{name}'")
        out[wire] = value
    out["model"] = model
    out["stream"] = stream
    out["messages"] = [_mistral_message(m) for m in body.get("messages") or ()]
    if out.get("tool_choice") == "required":
        out["tool_choice"] = "any"
    return out


def _mistral_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    out = dict(message)
    if out.get("role") == "developer":
        out["role"] = "system"
    if isinstance(out.get("tool_call_id"), str):
        out["tool_call_id"] = mistral_tool_id(out["tool_call_id"])
    calls = out.get("tool_calls")
    if isinstance(calls, list):
        out["tool_calls"] = [
            {**c, "id": mistral_tool_id(str(c.get("id", "")))} if isinstance(c, dict) else c
            for c in calls
        ]
    return out


def mistral_tool_id(call_id: str) -> str:
    if _MISTRAL_ID.fullmatch(call_id):
        return call_id
    number = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8])
    letters = []
    for _ in range(9):
        number, digit = divmod(number, len(_ALPHABET))
        letters.append(_ALPHABET[digit])
    return "".join(letters)


def mistral_chunks(chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """Mistral reports usage on the last chunk that has choices; OpenAI on a chunk of its
    own with empty choices, which is what clients expect. Tool calls get OpenAI's ``type``."""
    _typed_tool_calls(chunk, "delta")
    usage = chunk.get("usage")
    if not usage or not chunk.get("choices"):
        return [chunk]
    head = {k: v for k, v in chunk.items() if k != "usage"}
    tail = {k: v for k, v in chunk.items() if k != "choices"}
    tail["choices"] = []
    return [head, tail]


def mistral_completion(body: dict[str, Any]) -> dict[str, Any]:
    _typed_tool_calls(body, "message")
    return body


def _typed_tool_calls(body: dict[str, Any], field: str) -> None:
    for choice in body.get("choices") or ():
        part = choice.get(field) if isinstance(choice, dict) else None
        calls = part.get("tool_calls") if isinstance(part, dict) else None
        for i, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                call.setdefault("type", "function")
                if field == "delta":
                    call.setdefault("index", i)


def openai_embeddings(body: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    out = dict(body)
    if model is None:
        out.pop("model", None)
    else:
        out["model"] = model
    return out


def mistral_embeddings(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """Floats always (the gateway encodes base64 itself); ``dimensions`` is
    ``output_dimension``; token arrays are not accepted by Mistral."""
    texts = text_inputs("mistral", body.get("input"))
    out: dict[str, Any] = {"model": model, "input": texts}
    for name, value in body.items():
        if value is None or name in ("model", "input", "encoding_format") or name in ADVISORY:
            continue
        if name != "dimensions":
            raise Unsupported("mistral", f"the embeddings parameter '{name}'")
        out["output_dimension"] = value
    return out


def text_inputs(provider: str, value: Any) -> list[str]:
    """Embedding inputs as texts; token arrays are refused (only OpenAI takes them)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise Unsupported(provider, "embedding inputs given as token arrays")
