"""The boundary between the gateway and an upstream model provider.

A provider adapter is a ``Provider``: three methods, each given a resolved ``Target``
(everything needed to call one upstream model with one credential, taken from the compiled
snapshot) and the client's request in OpenAI format. Adapters translate to and from their wire
format, so the gateway only ever sees OpenAI ``chat.completion`` bodies,
``chat.completion.chunk`` dicts and embedding lists. Failures are ``ProviderError``s;
``retryable`` tells the gateway it may try the next target (connection error, timeout, 429,
5xx). ``Unsupported`` is raised before anything is sent when the provider cannot do what the
request asks (a parameter, a content type, embeddings): another target may, otherwise the
client gets a 400 naming what is missing, never a silently degraded answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Prices:
    """Micro-USD per million tokens, as in the model catalog."""

    input: int = 0
    output: int = 0
    cached_input: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    """One way to serve a route: a model of a provider, called with one credential."""

    kind: int  # shared.pb.snapshot_pb2.ProviderKind
    base_url: str
    options: Mapping[str, str]
    api_key: str
    provider_model: str
    model_id: str
    provider_id: str
    credential_id: str
    region: str
    prices: Prices
    priority: int = 0
    weight: int = 1
    enabled: bool = True

    def __repr__(self) -> str:  # never print the opened credential
        return f"Target(model_id={self.model_id!r}, provider_id={self.provider_id!r})"


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How a route calls its targets: timeouts (seconds), retries, latency-aware choice."""

    connect_timeout_s: float = 10.0
    first_token_timeout_s: float = 60.0
    total_timeout_s: float = 600.0
    max_retries: int = 0
    latency_aware: bool = False


DEFAULT_ROUTE_OPTIONS = RouteOptions()


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """Read an OpenAI ``usage`` object; anything malformed counts as zero."""
        if not isinstance(usage, dict):
            return cls()
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        return cls(
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
            _count(cached),
        )

    def to_openai(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_prompt_tokens:
            body["prompt_tokens_details"] = {"cached_tokens": self.cached_prompt_tokens}
        return body


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated client request. ``body`` is the client's JSON, untouched."""

    request_id: str
    body: Mapping[str, Any]
    stream: bool = False


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A validated ``/v1/embeddings`` request. ``body`` is the client's JSON, untouched."""

    request_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A complete answer: an OpenAI ``chat.completion`` body and the usage it reported."""

    body: dict[str, Any]
    usage: Usage


@dataclass(frozen=True, slots=True)
class EmbeddingsResult:
    """An OpenAI embeddings ``list`` body (vectors as float lists, or base64 strings when the
    client asked for base64 and the provider produced them) and the usage it reported."""

    body: dict[str, Any]
    usage: Usage


class ProviderError(Exception):
    """An upstream call that did not produce an answer.

    ``outcome`` is the short reason recorded in usage events ("status_500", "timeout",
    "connect_error", ...); ``status`` is the upstream HTTP status, 0 when there was none.
    """

    def __init__(
        self,
        outcome: str,
        *,
        status: int = 0,
        retryable: bool,
        retry_after: float | None = None,
        message: str = "",
    ) -> None:
        super().__init__(message or outcome)
        self.outcome = outcome
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.message = message or outcome


def status_error(status: int, message: str = "", retry_after: float | None = None) -> ProviderError:
    """The ProviderError for an upstream HTTP status: 408, 429, 5xx and the credential
    refusals 401/403 (another target may hold a working credential) are retryable."""
    retryable = status in (401, 403, 408, 429) or status >= 500
    return ProviderError(
        f"status_{status}",
        status=status,
        retryable=retryable,
        retry_after=retry_after,
        message=message,
    )


class Unsupported(ProviderError):
    """The provider cannot do what the request asks; raised before anything is sent."""

    def __init__(self, provider: str, what: str) -> None:
        super().__init__(
            "unsupported",
            status=400,
            retryable=False,
            message=f"{provider} does not support {what}",
        )
        self.what = what


class Provider(Protocol):
    """``connect_timeout_s`` (the route's) bounds connecting, when given; the caller bounds
    the time to the answer or first chunk and the total time."""

    async def complete(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> ChatResult: ...

    def stream(
        self, target: Target, request: ChatRequest, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks in OpenAI ``chat.completion.chunk`` form; the last one may carry ``usage``
        (with empty ``choices``). Raises ProviderError before or while yielding."""
        ...

    async def embed(
        self,
        target: Target,
        request: EmbeddingsRequest,
        *,
        connect_timeout_s: float | None = None,
    ) -> EmbeddingsResult: ...
