"""Forwarding a request in the client's own wire format to an upstream that speaks it
(``types.Native``), and reading what comes back on the way (helpers; the calls are in the
adapters).

The body travels as the client's bytes; only the model name changes, spliced into the bytes
when it occurs once as a ``"model"`` member (it always does at the top level, and a nested
``"model": "<the same name>"`` is the only thing that makes the splice ambiguous, in which case
the body is re-encoded). Answers are kept as the upstream's bytes, parsed once for usage, with
the model renamed back to the name the client asked for (the route's), the same way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import orjson

from data_plane.types import Event, Forwarded, Native, Usage
from data_plane.upstream.providers.base import ProviderError
from data_plane.upstream.providers.http import Readable, json_object, sse_bursts
from data_plane.upstream.providers.translate import count

Body = dict[str, Any]


def rename_model(raw: bytes, old: str, new: str) -> bytes | None:
    """``raw`` with its one ``"model": old`` member naming ``new``; None when the member is
    not found exactly once."""
    name = orjson.dumps(old)
    for needle in (b'"model":' + name, b'"model": ' + name):  # compact, or as json.dumps writes
        found = raw.count(needle)
        if found == 1:
            return raw.replace(needle, b'"model":' + orjson.dumps(new))
        if found:
            return None
    pattern = re.compile(rb'"model"\s*:\s*' + re.escape(name))
    if len(pattern.findall(raw)) != 1:
        return None
    return pattern.sub(lambda _: b'"model":' + orjson.dumps(new), raw, count=1)


def _model_holder(body: Body) -> Body:
    """The object of an answer or event that names the model (the top level, or the
    ``message`` / ``response`` an Anthropic or Responses event carries)."""
    for name in ("message", "response"):
        inner = body.get(name)
        if isinstance(inner, dict) and "model" in inner:
            return inner
    return body


def renamed(data: bytes, body: Body, model: str) -> bytes:
    """``data`` (``body`` parsed) naming ``model``; ``body`` is renamed too."""
    holder = _model_holder(body)
    old = holder.get("model")
    if not isinstance(old, str) or old == model:
        return data
    holder["model"] = model
    return rename_model(data, old, model) or orjson.dumps(body)


def request_bytes(
    request: Native, model: str | None, extra: Mapping[str, Any] | None = None
) -> bytes:
    """The body to send: the client's bytes with the upstream's model name (``None``: no
    model member, as Azure wants), re-encoded only when a splice cannot do it."""
    if request.raw is not None and model is not None and not extra:
        if model == request.model:
            return request.raw
        spliced = rename_model(request.raw, request.model, model)
        if spliced is not None:
            return spliced
    body = {**request.body, **(extra or {})}
    if model is None:
        body.pop("model", None)
    else:
        body["model"] = model
    return orjson.dumps(body)


def forwarded(payload: bytes, usage_of: Callable[[Body], Usage], model: str) -> Forwarded:
    """A complete answer, its model renamed to ``model`` (the client's)."""
    body = json_object(payload)
    usage = usage_of(body)
    return Forwarded(renamed(payload, body, model), body, usage)


def anthropic_usage(usage: Any) -> Usage:
    """Anthropic's usage: ``input_tokens`` excludes cache reads and writes, which the
    gateway counts as prompt (cache reads as cached prompt)."""
    if not isinstance(usage, dict):
        return Usage()
    cached = count(usage.get("cache_read_input_tokens"))
    written = count(usage.get("cache_creation_input_tokens"))
    return Usage(
        count(usage.get("input_tokens")) + cached + written,
        count(usage.get("output_tokens")),
        cached,
    )


def responses_usage(usage: Any) -> Usage:
    """The Responses API's usage (``input_tokens`` includes the cached ones)."""
    if not isinstance(usage, dict):
        return Usage()
    details = usage.get("input_tokens_details")
    cached = count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return Usage(count(usage.get("input_tokens")), count(usage.get("output_tokens")), cached)


def usage_of_message(body: Body) -> Usage:
    if body.get("type") != "message":
        raise ProviderError("bad_response", status=502, retryable=True)
    return anthropic_usage(body.get("usage"))


def usage_of_completion(body: Body) -> Usage:
    if not isinstance(body.get("choices"), list):
        raise ProviderError("bad_response", status=502, retryable=True)
    return Usage.from_openai(body.get("usage"))


def usage_of_response(body: Body) -> Usage:
    if body.get("object") != "response":
        raise ProviderError("bad_response", status=502, retryable=True)
    return responses_usage(body.get("usage"))


ENDS = frozenset({"message_stop", "response.completed", "response.incomplete", "response.failed"})


class StreamUsage:
    """The usage a stream reported so far, in any of the three formats: Anthropic's input
    in ``message_start`` and output (cumulative) in ``message_delta``; an OpenAI chunk's
    ``usage``; a Responses terminal event's ``response.usage``."""

    __slots__ = ("_anthropic",)

    def __init__(self) -> None:
        self._anthropic: dict[str, Any] = {}

    def feed(self, body: Body) -> Usage | None:
        kind = body.get("type")
        if kind == "message_start":
            message = body.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            return self._merge(usage)
        if kind == "message_delta":
            return self._merge(body.get("usage"))
        if kind in ENDS and isinstance(body.get("response"), dict):
            return responses_usage(body["response"].get("usage"))
        usage = body.get("usage")
        if usage and "choices" in body:
            return Usage.from_openai(usage)
        return None

    def _merge(self, usage: Any) -> Usage | None:
        if not isinstance(usage, dict):
            return None
        self._anthropic.update(usage)
        return anthropic_usage(self._anthropic)


async def events(content: Readable, model: str) -> AsyncIterator[Event]:
    """The upstream's server-sent events, parsed and naming ``model`` (the client's), up to
    and including the one that ends the stream (OpenAI chat's ``[DONE]``, Anthropic's
    ``message_stop``, a Responses terminal event); an error event is a ``ProviderError``.
    A stream that stops before its end is cut short: the caller raises ``truncated``.
    Events read together say so (``Event.more``), so a relay can write them together."""
    usage = StreamUsage()
    async for burst in sse_bursts(content):
        last = len(burst) - 1
        for i, (name, data) in enumerate(burst):
            if data == b"[DONE]":
                yield Event(name, data, None)
                return
            body = json_object(data)
            kind = body.get("type")
            if kind == "error" or (not kind and "error" in body):
                error = body.get("error", body)
                message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
                raise ProviderError("stream_error", status=502, retryable=True, message=message)
            more = i < last and kind not in ENDS
            yield Event(name, renamed(data, body, model), body, usage.feed(body), more)
            if kind in ENDS:
                return


BEFORE_OUTPUT = frozenset(
    {"message_start", "ping", "response.created", "response.in_progress", "response.queued"}
)


def carries_output(event: Event) -> bool:
    """Whether an event holds something of the answer (failover holds the ones before it)."""
    body = event.body
    if body is None:
        return True
    if "choices" in body or "usage" in body:
        return bool(body.get("usage")) or any(
            isinstance(c, dict) and (c.get("finish_reason") or _has_delta(c.get("delta")))
            for c in body.get("choices") or ()
        )
    return body.get("type") not in BEFORE_OUTPUT


def _has_delta(delta: Any) -> bool:
    return isinstance(delta, dict) and bool(delta.get("content") or delta.get("tool_calls"))
