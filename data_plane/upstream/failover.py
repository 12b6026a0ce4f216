"""Calling the upstream: try a route's ordered targets until one answers.

One ``Call`` per request walks the targets ``routing.order_targets`` chose. For each target:
skip it while its circuit breaker is open or it asked to wait (Retry-After); otherwise send,
bounded by the route's timeouts (connect; first token, which for a non-streaming answer is the
whole answer; and the total, counted from the request's arrival). A retryable failure
(connection error, timeout, 429, 5xx) is retried on the same target up to the route's
``max_retries`` with jittered exponential backoff, never sooner than the provider's
Retry-After, then the next target is tried. Each failed or skipped attempt is kept in
``Call.tried`` with its reason; the caller records them as the request's fallbacks (this module
writes no record). A non-retryable refusal (the provider rejected the request itself) ends the
request; a target that cannot do what the request asks (``Unsupported``) is
passed over for one that can.

For streams, a target has answered once a chunk carrying output (text, a tool call, a finish
reason or usage) arrived: the chunks before it are held back, so a stream that fails before
its first token falls back like any failure. After it the response is committed to the
client: a later failure ends the stream with an error, never a silent replay elsewhere.

A request in a client wire format (``types.Native``) is forwarded as it is to a target whose
adapter speaks that format, and translated to an OpenAI chat request for any other target; a
feature the translation cannot carry passes that target over (``Unsupported``, a 400 naming
the feature when no target can take the request), unless the route says to drop it
(``RouteOptions.drop_untranslatable``: ``Native.dropped`` then names what was left out).

When every target failed: 429 with Retry-After when all the answers were 429s (or targets
waiting out a Retry-After), 503 when breakers kept every target out, 400 when no target
could do what was asked, 502 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from data_plane import errors
from data_plane.backoff import backoff_delay
from data_plane.errors import ApiError
from data_plane.policy.health import HealthBook
from data_plane.tracing import RequestTrace
from data_plane.types import (
    ChatRequest,
    EmbeddingsRequest,
    Forwarded,
    Native,
    RandomSource,
    RouteOptions,
    Target,
    Untranslatable,
    Usage,
)
from data_plane.upstream.providers import native
from data_plane.upstream.providers.base import Provider, ProviderError, Unsupported, forwarding
from shared.pb import snapshot_pb2

UNSUPPORTED_KIND = "unsupported_provider"
RETRY_MIN_S = 0.1
RETRY_MAX_S = 5.0
# A Retry-After longer than this is not waited for on the request path: fall back instead.
RETRY_AFTER_MAX_S = 5.0


def carries_output(chunk: Mapping[str, Any]) -> bool:
    """Whether a chunk holds something of the answer (not just the role or empty text)."""
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and (delta.get("content") or delta.get("tool_calls")):
            return True
    return False


@dataclass(slots=True)
class Tried:
    """What a call did, for the caller to record: the failed or skipped attempts in order
    (target, outcome), the target that answered, how long after arrival its first output came,
    and the usage it reported (for a complete answer; a stream's usage comes in its chunks)."""

    failed: list[tuple[Target, str]] = field(default_factory=list)
    target: Target | None = None
    first_output_s: float = 0.0
    usage: Usage | None = None


class Call:
    """One request's way through ``targets``, in order, from ``started`` (the request's
    arrival on ``clock``). ``note`` is added to the final error message (e.g. that residency
    left targets out). What it tried is in ``tried``."""

    def __init__(
        self,
        providers: Mapping[int, Provider],
        health: HealthBook,
        rand: RandomSource,
        options: RouteOptions,
        targets: Sequence[Target],
        *,
        started: float,
        route_name: str = "",
        note: str = "",
        clock: Callable[[], float] = time.monotonic,
        trace: RequestTrace | None = None,
    ) -> None:
        self.providers = providers
        self.health = health
        self.rand = rand
        self.options = options
        self.targets = targets
        self.started = started
        self.route_name = route_name
        self.note = note
        self.clock = clock
        self.trace = trace  # one span per attempt when the request is traced
        self.deadline = started + options.total_timeout_s
        self.tried = Tried()
        self._failures: list[ProviderError] = []  # retryable failures
        self._skipped: list[tuple[Target, str]] = []
        self._unsupported: Unsupported | None = None

    async def complete(
        self, request: ChatRequest | Native
    ) -> dict[str, Any] | Forwarded | ApiError:
        """The first successful answer: the upstream's own when the request was forwarded
        as it is, else a ``chat.completion`` body; or the error to answer with."""
        connect = self.options.connect_timeout_s

        async def attempt(provider: Provider, target: Target) -> dict[str, Any] | Forwarded:
            if isinstance(request, Native):
                forwarder = forwarding(provider, request.wire)
                if forwarder is not None:
                    answer = await forwarder.forward(target, request, connect_timeout_s=connect)
                    self.tried.usage = answer.usage
                    return answer
            chat = as_chat(request, target)
            result = await provider.complete(target, chat, connect_timeout_s=connect)
            self.tried.usage = result.usage
            return result.body

        return await self._run(attempt)

    async def embed(self, request: EmbeddingsRequest) -> dict[str, Any] | ApiError:
        connect = self.options.connect_timeout_s

        async def attempt(provider: Provider, target: Target) -> dict[str, Any]:
            result = await provider.embed(target, request, connect_timeout_s=connect)
            self.tried.usage = result.usage
            return result.body

        return await self._run(attempt)

    async def open_stream(self, request: ChatRequest | Native) -> Stream | ApiError:
        """The stream of the first target that produces output, its held chunks first:
        the upstream's own events (``Stream.native``) when the request was forwarded as it
        is, else ``chat.completion.chunk`` dicts."""
        connect = self.options.connect_timeout_s

        async def attempt(provider: Provider, target: Target) -> Stream:
            chunks: AsyncIterator[Any]
            forwarder = forwarding(provider, request.wire) if isinstance(request, Native) else None
            if forwarder is not None:
                assert isinstance(request, Native)
                chunks = forwarder.forward_stream(target, request, connect_timeout_s=connect)
                output: Callable[[Any], bool] = native.carries_output
            else:
                chat = as_chat(request, target)
                chunks = provider.stream(target, chat, connect_timeout_s=connect)
                output = carries_output
            head: deque[Any] = deque()
            try:
                while True:
                    chunk = await anext(chunks)
                    head.append(chunk)
                    if output(chunk):
                        return Stream(head, chunks, self, target, native=forwarder is not None)
            except StopAsyncIteration:
                raise ProviderError("empty_stream", status=502, retryable=True) from None
            except BaseException:
                await close_stream(chunks)
                raise

        return await self._run(attempt)

    async def _run[T](self, attempt: Callable[[Provider, Target], Awaitable[T]]) -> T | ApiError:
        tried, health, options = self.tried, self.health, self.options
        for target in self.targets:
            provider = self.providers.get(target.kind)
            if provider is None:
                tried.failed.append((target, UNSUPPORTED_KIND))
                continue
            for retry in range(options.max_retries + 1):
                now = self.clock()
                blocked = health.blocked(target, now)
                if blocked is not None:
                    tried.failed.append((target, blocked))
                    self._skipped.append((target, blocked))
                    if self.trace is not None:
                        self.trace.skipped(target, self.route_name, blocked)
                    break
                remaining = self.deadline - now
                if remaining <= 0:
                    tried.failed.append((target, "total_timeout"))
                    return self._error()
                health.begin(target, now)
                traced = self.trace.attempt(target, self.route_name) if self.trace else None
                try:
                    async with asyncio.timeout(min(options.first_token_timeout_s, remaining)):
                        result = await attempt(provider, target)
                except TimeoutError:
                    failure = ProviderError("timeout", retryable=True)
                except ProviderError as exc:
                    failure = exc
                except BaseException:
                    health.abandoned(target, self.clock())
                    if traced is not None:
                        traced.failed("abandoned")
                    raise
                else:
                    done = self.clock()
                    health.succeeded(target, done, done - now)
                    tried.target = target
                    tried.first_output_s = done - self.started
                    if traced is not None:
                        traced.succeeded(result, tried.usage)
                    return result
                if traced is not None:
                    traced.failed(failure.outcome)
                if isinstance(failure, Unsupported):
                    self._passed_over(target, failure)
                    break
                if not failure.retryable:  # the provider answered: it is up, the request is not
                    health.succeeded(target, self.clock())
                    tried.target = target
                    return errors.upstream_rejected(failure.status, failure.message)
                delay = self._retry_delay(target, failure, retry)
                if delay is None:
                    break
                await asyncio.sleep(delay)
        return self._error()

    def _passed_over(self, target: Target, failure: Unsupported) -> None:
        self.health.abandoned(target, self.clock())
        self.tried.failed.append((target, failure.outcome))
        self._unsupported = self._unsupported or failure

    def _retry_delay(self, target: Target, failure: ProviderError, retry: int) -> float | None:
        """Record a retryable failure; the delay before retrying the same target, or None to
        move on (retries used up, breaker open, or a wait longer than allowed)."""
        now = self.clock()
        self.tried.failed.append((target, failure.outcome))
        self._failures.append(failure)
        opened = self.health.failed(target, now, failure.retry_after)
        if opened or retry >= self.options.max_retries:
            return None
        backoff = backoff_delay(retry, self.rand, RETRY_MIN_S, RETRY_MAX_S)
        delay = max(backoff, failure.retry_after or 0.0)
        if delay > RETRY_AFTER_MAX_S or now + delay >= self.deadline:
            return None
        return delay

    def _error(self) -> ApiError:
        route, note = self.route_name, self.note
        now = self.clock()
        waits = [f.retry_after for f in self._failures if f.retry_after]
        waits += [self.health.ready_in(t, now) for t, _ in self._skipped]
        retry_after = max(1, math.ceil(min(waits))) if waits else 1
        if self._failures and all(f.status == 429 for f in self._failures):
            return errors.upstream_rate_limited(route, retry_after, note)
        if not self._failures and self._skipped:
            if all(reason == "retry_after" for _, reason in self._skipped):
                return errors.upstream_rate_limited(route, retry_after, note)
            return errors.no_healthy_target(route, retry_after, note)
        if not self._failures and self._unsupported is not None:
            return errors.unsupported(self._unsupported.message)
        return errors.upstream_error(route, len(self.tried.failed), note)

    def stream_failed(self, target: Target, failure: ProviderError) -> None:
        self.health.failed(target, self.clock(), failure.retry_after)


def as_chat(request: ChatRequest | Native, target: Target) -> ChatRequest:
    """The request as an OpenAI chat request for ``target``'s adapter."""
    if isinstance(request, ChatRequest):
        return request
    try:
        return request.translate(request.dropped)
    except Untranslatable as exc:
        kind = snapshot_pb2.ProviderKind.Name(target.kind).removeprefix("PROVIDER_KIND_")
        raise Unsupported(kind.lower(), exc.what) from None


class Stream:
    """The rest of a stream that started: held chunks, then the provider's, bounded by the
    route's total timeout. A failure now counts against the target's health. Its items are
    ``Event``s when ``native`` (the upstream speaks the client's format), else chunk dicts."""

    def __init__(
        self,
        head: deque[Any],
        chunks: AsyncIterator[Any],
        call: Call,
        target: Target,
        *,
        native: bool = False,
    ) -> None:
        self._head = head
        self._chunks = chunks
        self._call = call
        self._target = target
        self.native = native
        self._at_hand = False  # the last event said the next one was read with it

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        if self._head:
            item = self._head.popleft()
            if self._call.trace is not None:
                self._call.trace.observe(item)
            return item
        try:
            if self._at_hand:  # no wait for it: no timer to arm (as a timeout would not fire)
                item = await anext(self._chunks)
            else:
                remaining = self._call.deadline - self._call.clock()
                async with asyncio.timeout(max(0.0, remaining)):
                    item = await anext(self._chunks)
            self._at_hand = getattr(item, "more", False) is True
            if self._call.trace is not None:
                self._call.trace.observe(item)
            return item
        except TimeoutError:
            failure = ProviderError("total_timeout", retryable=True)
        except ProviderError as exc:
            failure = exc
        self._call.stream_failed(self._target, failure)
        raise failure

    async def aclose(self) -> None:
        await close_stream(self._chunks)


async def close_stream(chunks: AsyncIterator[Any]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):  # the stream already failed; closing is best effort
            await aclose()
