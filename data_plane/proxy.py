"""Calling the upstream: try a route's ordered targets until one answers.

A retryable failure (connection error, timeout, 429, 5xx) of a target that has not sent
anything to the client moves on to the next target and is recorded in the request's
fallbacks; a non-retryable one (the provider refused the request itself) ends the request.
For streams, a target has "answered" once its first chunk arrived; after that the response
is committed to the client and no fallback is possible.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from data_plane import errors
from data_plane.errors import ApiError
from data_plane.providers.base import ChatRequest, Provider, ProviderError, Target
from data_plane.usage import RequestRecord

UNSUPPORTED = "unsupported_provider"


def _elapsed_ms(record: RequestRecord) -> int:
    return int((time.monotonic() - record.started) * 1000)


async def complete(
    providers: Mapping[int, Provider],
    targets: Sequence[Target],
    request: ChatRequest,
    record: RequestRecord,
) -> dict[str, Any] | ApiError:
    """The first successful ``chat.completion`` body, or the error to answer with."""
    for target in targets:
        provider = providers.get(target.kind)
        if provider is None:
            record.failed_attempt(target, UNSUPPORTED)
            continue
        try:
            result = await provider.complete(target, request)
        except ProviderError as exc:
            if exc.retryable:
                record.failed_attempt(target, exc.outcome)
                continue
            record.target = target
            return errors.upstream_rejected(exc.status, exc.message)
        record.target = target
        record.usage = result.usage
        record.ttft_ms = _elapsed_ms(record)
        return result.body
    return errors.upstream_error(record.route_name, len(record.fallbacks))


async def open_stream(
    providers: Mapping[int, Provider],
    targets: Sequence[Target],
    request: ChatRequest,
    record: RequestRecord,
) -> tuple[dict[str, Any], AsyncIterator[dict[str, Any]]] | ApiError:
    """The first chunk and the rest of the stream of the first target that starts one."""
    for target in targets:
        provider = providers.get(target.kind)
        if provider is None:
            record.failed_attempt(target, UNSUPPORTED)
            continue
        chunks = provider.stream(target, request)
        try:
            first = await anext(chunks)
        except ProviderError as exc:
            await close_stream(chunks)
            if exc.retryable:
                record.failed_attempt(target, exc.outcome)
                continue
            record.target = target
            return errors.upstream_rejected(exc.status, exc.message)
        except StopAsyncIteration:
            record.failed_attempt(target, "empty_stream")
            continue
        record.target = target
        record.ttft_ms = _elapsed_ms(record)
        return first, chunks
    return errors.upstream_error(record.route_name, len(record.fallbacks))


async def close_stream(chunks: AsyncIterator[dict[str, Any]]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):  # the stream already failed; closing is best effort
            await aclose()
