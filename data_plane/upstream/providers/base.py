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

from collections.abc import AsyncIterator
from typing import Any, Protocol, cast, runtime_checkable

from data_plane.types import (
    ChatRequest,
    ChatResult,
    EmbeddingsRequest,
    EmbeddingsResult,
    Event,
    Forwarded,
    Native,
    Target,
)


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


@runtime_checkable
class Forwarding(Protocol):
    """An adapter that also takes requests in the client wire formats it names in ``wires``
    (``types.ANTHROPIC_MESSAGES``, ...) and forwards them as they are (``types.Native``)."""

    wires: frozenset[str]

    async def forward(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> Forwarded: ...

    def forward_stream(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> AsyncIterator[Event]:
        """The upstream's events up to its end marker; raises ProviderError before or while
        yielding (a stream cut short is ``stream_truncated``)."""
        ...


def forwarding(provider: Provider, wire: str) -> Forwarding | None:
    """``provider`` when it forwards requests in ``wire`` as they are (an attribute lookup:
    a runtime protocol check costs more, on every attempt)."""
    if wire in getattr(provider, "wires", ()):
        return cast(Forwarding, provider)
    return None


@runtime_checkable
class TokenCounting(Protocol):
    """An adapter whose upstream counts a request's input tokens itself (Anthropic's
    ``count_tokens``); its answer is that API's JSON."""

    async def count_tokens(
        self, target: Target, request: Native, *, connect_timeout_s: float | None = None
    ) -> dict[str, Any]: ...


@runtime_checkable
class ResponseStore(Protocol):
    """An adapter whose upstream keeps Responses API answers (``GET /responses/{id}``)."""

    async def retrieve_response(
        self,
        target: Target,
        response_id: str,
        model: str,
        *,
        connect_timeout_s: float | None = None,
    ) -> Forwarded: ...
