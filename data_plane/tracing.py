"""OpenTelemetry traces of the request path (docs/tracing.md), off unless configured.

One ``RequestTrace`` per request holds the server span and starts its children: a step of the
pipeline (input guardrails, admission, relaying the answer), and one client span per upstream
attempt (``upstream/failover.py``), so a fallback shows as several attempts. Attributes follow
the OpenTelemetry GenAI semantic conventions as of v1.37 (``gen_ai.provider.name``, which
replaced ``gen_ai.system``). Prompt and completion text (``gen_ai.input.messages``,
``gen_ai.output.messages``) is recorded only for a tenant whose policy consents
(``TenantEntry.trace_prompts``); without it a span carries no text of the conversation.

Off (no endpoint, no exporter), the app holds no tracer: the request path checks for
``None`` and creates nothing. Children are started with their parent passed explicitly, never
through the "current span" context, except around admission (``step(current=True)``): a lease
round it waits for carries that span's ``traceparent`` to the control plane (``carrier``,
``remote_parent``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer

from data_plane.types import Target, Usage
from shared.otel import PROPAGATOR
from shared.pb import snapshot_pb2

SCOPE = "asc.data_plane"

# gen_ai.provider.name: the well-known values where there is one, else the kind in lower case.
PROVIDER_NAMES: dict[int, str] = {
    snapshot_pb2.PROVIDER_KIND_OPENAI: "openai",
    snapshot_pb2.PROVIDER_KIND_ANTHROPIC: "anthropic",
    snapshot_pb2.PROVIDER_KIND_MISTRAL: "mistral_ai",
    snapshot_pb2.PROVIDER_KIND_AZURE_OPENAI: "azure.ai.openai",
    snapshot_pb2.PROVIDER_KIND_GEMINI: "gcp.gemini",
    snapshot_pb2.PROVIDER_KIND_OPENAI_COMPATIBLE: "openai_compatible",
    snapshot_pb2.PROVIDER_KIND_MOCK: "mock",
}

_RESPONSE_ENDS = frozenset({"response.completed", "response.incomplete", "response.failed"})
_OFF: AbstractContextManager[None] = contextlib.nullcontext()


def provider_name(kind: int) -> str:
    return PROVIDER_NAMES.get(kind, "unknown")


def tracer_of(provider: TracerProvider) -> Tracer:
    return provider.get_tracer(SCOPE)


class RequestTrace:
    """The spans of one request. ``prompts``: the tenant consents to text in its traces."""

    __slots__ = (
        "_output",
        "_parent",
        "_tracer",
        "finish_reasons",
        "operation",
        "prompts",
        "response_model",
        "span",
    )

    def __init__(
        self, tracer: Tracer, method: str, path: str, headers: Mapping[str, str], request_id: str
    ) -> None:
        self._tracer = tracer
        self.operation = "embeddings" if path == "/v1/embeddings" else "chat"
        self.span = tracer.start_span(
            f"{method} {path}",
            context=PROPAGATOR.extract(headers),  # the caller's traceparent, if it sent one
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "gen_ai.operation.name": self.operation,
                "asc.request_id": request_id,
            },
        )
        self._parent = trace_api.set_span_in_context(self.span)
        self.prompts = False
        self.response_model = ""
        self.finish_reasons: list[str] = []
        self._output: list[str] = []

    @contextlib.contextmanager
    def step(self, name: str, *, current: bool = False) -> Iterator[Span]:
        """A child span around a step; ``current``: also the current span while it runs."""
        span = self._tracer.start_span(name, context=self._parent)
        token = otel_context.attach(trace_api.set_span_in_context(span)) if current else None
        try:
            yield span
        except BaseException as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            if token is not None:
                otel_context.detach(token)
            span.end()

    def authenticated(self, tenant_slug: str, trace_prompts: bool) -> None:
        self.span.set_attribute("asc.tenant", tenant_slug)
        self.prompts = trace_prompts

    def prompt(self, body: Mapping[str, Any]) -> None:
        """The request's messages (after guardrails), only with the tenant's consent."""
        if self.prompts:
            self.span.set_attribute("gen_ai.input.messages", _json(input_messages(body)))

    def attempt(self, target: Target, route_name: str) -> Attempt:
        """The client span of one upstream attempt, ended by ``Attempt.failed``/``succeeded``."""
        span = self._tracer.start_span(
            f"{self.operation} {target.provider_model}",
            context=self._parent,
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": self.operation,
                "gen_ai.provider.name": provider_name(target.kind),
                "gen_ai.request.model": target.provider_model,
                "asc.provider_id": target.provider_id,
                "asc.model_id": target.model_id,
            },
        )
        return Attempt(self, span, target, route_name)

    def skipped(self, target: Target, route_name: str, outcome: str) -> None:
        """A target passed over without a call (breaker open, waiting out a Retry-After)."""
        self.attempt(target, route_name).failed(outcome)

    def observe(self, item: Any) -> None:
        """One item of a stream relayed to the client: an OpenAI chunk dict, or an ``Event``
        of the client's own format (OpenAI, Anthropic or Responses)."""
        body = item if isinstance(item, dict) else getattr(item, "body", None)
        if not isinstance(body, dict):
            return
        kind = body.get("type")
        if kind is None:  # an OpenAI chunk
            self.answer(body)
        elif kind == "message_start" and isinstance(body.get("message"), dict):
            self.answer(body["message"])
        elif kind == "message_delta" and isinstance(body.get("delta"), dict):
            self.answer(body["delta"])
        elif kind == "content_block_delta" and isinstance(body.get("delta"), dict):
            if self.prompts and isinstance(body["delta"].get("text"), str):
                self._output.append(body["delta"]["text"])
        elif kind == "response.output_text.delta":
            if self.prompts and isinstance(body.get("delta"), str):
                self._output.append(body["delta"])
        elif kind in _RESPONSE_ENDS and isinstance(body.get("response"), dict):
            self.answer(body["response"], text=False)

    def answer(self, body: Mapping[str, Any], *, text: bool = True) -> None:
        model = body.get("model")
        if isinstance(model, str) and model:
            self.response_model = model
        self.finish_reasons.extend(finish_reasons(body))
        if self.prompts and text:
            self._output.extend(output_text(body))

    def finish(
        self,
        *,
        status: int,
        error_code: str,
        route_name: str,
        target: Target | None,
        usage: Usage,
        fallbacks: int,
        cache_hit: bool = False,
    ) -> None:
        span = self.span
        if cache_hit:
            span.set_attribute("asc.cache_hit", True)
        span.set_attribute("http.response.status_code", status)
        if route_name:
            span.set_attribute("asc.route", route_name)
            span.set_attribute("gen_ai.request.model", route_name)
        if error_code:
            span.set_attribute("asc.error_code", error_code)
        if status >= 500:
            span.set_status(StatusCode.ERROR, error_code)
        span.set_attribute("asc.fallbacks", fallbacks)
        if target is not None:
            model = response_model(self.response_model, route_name, target)
            span.set_attribute("gen_ai.provider.name", provider_name(target.kind))
            span.set_attribute("gen_ai.response.model", model)
            span.set_attribute("asc.model_id", target.model_id)
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if self.finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", self.finish_reasons)
        if self.prompts and self._output:
            output = [{"role": "assistant", "parts": [_text("".join(self._output))]}]
            span.set_attribute("gen_ai.output.messages", _json(output))
        span.end()


class Attempt:
    """One upstream attempt's span."""

    __slots__ = ("route_name", "span", "target", "trace")

    def __init__(self, trace: RequestTrace, span: Span, target: Target, route_name: str) -> None:
        self.trace = trace
        self.span = span
        self.target = target
        self.route_name = route_name

    def failed(self, outcome: str) -> None:
        span = self.span
        span.set_attribute("asc.attempt.outcome", outcome)
        span.set_attribute("error.type", outcome)
        span.set_status(StatusCode.ERROR, outcome)
        span.end()

    def succeeded(self, answer: Any, usage: Usage | None) -> None:
        """``answer``: a complete answer's body (dict, or one with ``.body``), or a stream
        that has started (its model and finish reasons come with its chunks: ``observe``)."""
        span, trace = self.span, self.trace
        span.set_attribute("asc.attempt.outcome", "ok")
        body = answer if isinstance(answer, dict) else getattr(answer, "body", None)
        if isinstance(body, dict):
            trace.answer(body)
            model = response_model(trace.response_model, self.route_name, self.target)
            span.set_attribute("gen_ai.response.model", model)
            if trace.finish_reasons:
                span.set_attribute("gen_ai.response.finish_reasons", trace.finish_reasons)
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.end()


def response_model(answered: str, route_name: str, target: Target) -> str:
    """The model that answered: as the answer names it, unless it names only the route (an
    answer passed through is renamed to the name the client asked for): then the target's."""
    return answered if answered and answered != route_name else target.provider_model


def step(
    trace: RequestTrace | None, name: str, *, current: bool = False
) -> AbstractContextManager[Span | None]:
    """``trace.step(name)``, or a shared no-op when the request is not traced."""
    return _OFF if trace is None else trace.step(name, current=current)


def annotate(span: Span | None, key: str, value: str) -> None:
    if span is not None:
        span.set_attribute(key, value)


# Propagation to the control plane (lease asks).
def carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers, or None when there is none (tracing off,
    or not inside a traced request's admission)."""
    if not trace_api.get_current_span().get_span_context().is_valid:
        return None
    headers: dict[str, str] = {}
    PROPAGATOR.inject(headers)
    return headers


def outgoing_metadata() -> tuple[tuple[str, str], ...] | None:
    """gRPC metadata carrying the current trace context, or None."""
    headers = carrier()
    return tuple(headers.items()) if headers else None


@contextlib.contextmanager
def remote_parent(headers: Mapping[str, str] | None) -> Iterator[None]:
    """Make the span ``headers`` name the current parent for the block (None: no change)."""
    if not headers:
        yield
        return
    token = otel_context.attach(PROPAGATOR.extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


# What a body says, in any of the three answer formats (OpenAI chat, Anthropic, Responses).
def finish_reasons(body: Mapping[str, Any]) -> list[str]:
    choices = body.get("choices")
    if isinstance(choices, list):
        return [
            c["finish_reason"]
            for c in choices
            if isinstance(c, dict) and isinstance(c.get("finish_reason"), str)
        ]
    stop = body.get("stop_reason")
    if isinstance(stop, str):
        return [stop]
    status = body.get("status")
    if body.get("object") == "response" and isinstance(status, str):
        return [status]
    return []


def output_text(body: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    for choice in _dicts(body.get("choices")):
        for key in ("message", "delta"):
            part = choice.get(key)
            if isinstance(part, dict) and isinstance(part.get("content"), str):
                texts.append(part["content"])
    for block in _dicts(body.get("content")):  # Anthropic
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
    for item in _dicts(body.get("output")):  # Responses
        for block in _dicts(item.get("content")):
            if isinstance(block.get("text"), str):
                texts.append(block["text"])
    return texts


def input_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's messages in the conventions' shape: role and parts (text, or the part's
    type alone for anything else)."""
    messages: list[dict[str, Any]] = []
    system = body.get("system") if "system" in body else body.get("instructions")
    if system is not None:
        messages.append({"role": "system", "parts": _parts(system)})
    items = body.get("messages")
    if items is None:
        items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for message in _dicts(items):
        role = message.get("role")
        messages.append(
            {
                "role": role if isinstance(role, str) else str(message.get("type", "")),
                "parts": _parts(message.get("content")),
            }
        )
    return messages


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_text(content)]
    parts: list[dict[str, Any]] = []
    for part in _dicts(content):
        text = part.get("text")
        if isinstance(text, str):
            parts.append(_text(text))
        else:
            parts.append({"type": str(part.get("type", "unknown"))})
    return parts


def _text(content: str) -> dict[str, Any]:
    return {"type": "text", "content": content}


def _dicts(value: Any) -> Sequence[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else ()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()
