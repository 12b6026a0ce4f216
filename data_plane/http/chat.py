"""Serving a model request (chat completions, Messages, Responses) once ``pipeline.handle``
has authenticated it: tags, route, input guard, admission, the response cache, then the
providers' answer, forwarded as it came to a client of the target's own format
(``_forwarded``, ``_relay_native``) or rebuilt in the client's shapes, through the output
guard (``_relay`` for a stream).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from data_plane import errors, tracing
from data_plane.dialects import openai as openai_api
from data_plane.dialects.guarding import changed, guard_body
from data_plane.dialects.inbound import Inbound, with_body
from data_plane.errors import ApiError
from data_plane.guardrails import Action, CompiledGuardrails
from data_plane.guardrails.enforce import ChunkGuard, blocked_error, guard_completion
from data_plane.http import caching
from data_plane.http.owners import Owner
from data_plane.http.pipeline import (
    JSON,
    OWNERS,
    Context,
    Relay,
    admit,
    json_response,
    route_for,
    tag,
)
from data_plane.policy.auth import END_USER_HEADER
from data_plane.types import OPENAI_CHAT, OPENAI_RESPONSES, Forwarded, Usage
from data_plane.upstream.failover import Call, Stream
from data_plane.upstream.providers.base import ProviderError
from data_plane.usage.record import estimate_usage

log = logging.getLogger(__name__)


# Wire formats whose ``metadata`` object carries tags (Anthropic's holds only a user id).
TAGGED_WIRES = frozenset({OPENAI_CHAT, OPENAI_RESPONSES})


async def serve_chat(context: Context) -> web.StreamResponse:
    """A model request in the client's dialect: forwarded as it is to a target that speaks
    it, translated for the others (``upstream.failover``)."""
    record, request = context.record, context.request
    raw = await request.read()
    parsed = context.dialect.parse(raw, record.request_id, request.headers)
    if isinstance(parsed, ApiError):
        return context.fail(parsed)
    record.stream = parsed.stream
    _attribute(context, parsed.end_user)
    metadata = parsed.body.get("metadata") if parsed.native.wire in TAGGED_WIRES else None
    untagged = tag(context, metadata)
    if untagged is not None:
        return context.fail(untagged)
    routed = route_for(context, parsed.native.model)
    if isinstance(routed, ApiError):
        return context.fail(routed)
    route, guard = routed
    if guard is not None and guard.on_input:
        with tracing.step(context.trace, "asc.guardrails.input") as span:
            body, verdict = guard_body(guard.compiled, parsed.body, parsed.guarded)
            tracing.annotate(span, "asc.guardrails.decision", verdict.decision)
        record.verdicts.append(verdict)
        if verdict.decision is Action.BLOCK:
            return context.fail(blocked_error(verdict))
        if body is not parsed.body:
            parsed = with_body(parsed, body)
    if context.trace is not None:
        context.trace.prompt(parsed.body)  # with the tenant's consent only
    output_guard = guard.compiled if guard is not None and guard.on_output else None
    if route.options.drop_untranslatable:  # what a translation leaves out, for the audit
        parsed.native.dropped = record.dropped
    owner = _previous_owner(context, parsed)
    call = await admit(context, route, len(raw), parsed.admission, owner)
    if isinstance(call, ApiError):
        return context.fail(call)
    if route.options.cache_ttl_s:  # a hit is authorised, guarded and admitted like a miss
        context.cache = caching.plan(request.headers, route, parsed, guard)
        hit = await caching.serve(request, record, context.cache)
        if hit is not None:
            return hit
    if parsed.stream:
        return await _stream(context, parsed, call, output_guard)
    answer = await call.complete(parsed.native)
    if isinstance(answer, ApiError):
        return context.fail(answer)
    with tracing.step(context.trace, "asc.relay"):
        if isinstance(answer, Forwarded):
            return _forwarded(context, answer, output_guard)
        if output_guard is not None:
            record.verdicts.append(guard_completion(output_guard, answer))
        return json_response(context.dialect.answer(answer, route.name, parsed))


def _previous_owner(context: Context, parsed: Inbound) -> Owner | None:
    previous = parsed.body.get("previous_response_id")
    if parsed.native.wire != OPENAI_RESPONSES or not isinstance(previous, str):
        return None
    return context.request.app[OWNERS].owner(previous, context.principal.tenant.id)


def _remember(context: Context, response: Any) -> None:
    """Note which target keeps a Responses API answer (by its id)."""
    call, route = context.call, context.record.route
    if call is None or call.tried.target is None or route is None:
        return
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        target = call.tried.target
        owner = Owner(route.tenant_id, route.id, target.model_id, target.credential_id)
        context.request.app[OWNERS].remember(response["id"], owner)


def _attribute(context: Context, end_user: str) -> None:
    """The person the body names, trusted like the end-user header (which wins)."""
    principal = context.principal
    asserted = context.request.headers.get(END_USER_HEADER)
    if end_user and principal.key.asserts_end_user and not asserted:
        context.record.principal = replace(principal, subject=end_user)


def _forwarded(
    context: Context, answer: Forwarded, output_guard: CompiledGuardrails | None
) -> web.Response:
    """The upstream's own answer, as it sent it unless the output guard changed its text."""
    data = answer.raw
    if answer.body.get("object") == "response":
        _remember(context, answer.body)
    if output_guard is not None:
        verdict = context.dialect.guard_answer(output_guard, answer.body)
        context.record.verdicts.append(verdict)
        if changed(verdict):
            data = orjson.dumps(answer.body)
    return web.Response(body=data, content_type=JSON)


async def _stream(
    context: Context,
    parsed: Inbound,
    call: Call,
    output_guard: CompiledGuardrails | None,
) -> web.StreamResponse:
    record = context.record
    opened = await call.open_stream(parsed.native)
    if isinstance(opened, ApiError):
        return context.fail(opened)
    response = caching.stream_response(
        context.request,
        context.cache,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "x-request-id": record.request_id,
        },
    )
    await response.prepare(context.request)
    with tracing.step(context.trace, "asc.relay"):
        if opened.native:
            relay = context.dialect.relay(parsed, output_guard)
            connected = await _relay_native(context, opened, response, relay)
        else:
            connected = await _relay(context, parsed, opened, response, output_guard)
    if connected:
        try:
            await response.write_eof()
        except ConnectionResetError:  # gone after the last event, before the stream's end
            record.error_code = errors.CLIENT_DISCONNECTED
    return response


async def _relay_native(
    context: Context, stream: Stream, response: web.StreamResponse, relay: Relay
) -> bool:
    """Pass the upstream's own events on (through the relay's output guard); False when the
    client went away."""
    record = context.record
    pending: list[bytes] = []  # events read together, written together
    try:
        async for event in stream:
            if event.usage is not None:
                record.usage = event.usage
            if event.body is not None and event.body.get("type") == "response.created":
                _remember(context, event.body.get("response"))
            data = relay.event(event)
            if data:
                pending.append(data)
            if pending and not event.more:
                await response.write(b"".join(pending))
                pending.clear()
        await response.write(b"".join(pending) + relay.end())
    except ProviderError as exc:
        record.error_code = errors.STREAM_INTERRUPTED
        error = relay.error(errors.stream_broken(record.route_name))
        await response.write(b"".join(pending) + error)
        log.warning("upstream stream broke for request %s: %s", record.request_id, exc.outcome)
    except ConnectionResetError:
        record.error_code = errors.CLIENT_DISCONNECTED
        return False
    finally:
        await stream.aclose()
        record.verdicts.append(relay.verdict)
    return True


async def _relay(
    context: Context,
    parsed: Inbound,
    stream: Stream,
    response: web.StreamResponse,
    output_guard: CompiledGuardrails | None,
) -> bool:
    """Pass the stream on through the output guard; False when the client went away."""
    record, route_name = context.record, context.record.route_name
    encoder = context.dialect.encoder(parsed, route_name)
    guard = ChunkGuard(output_guard) if output_guard is not None else None
    produced = 0  # content chunks received: what the provider produced, if it never says
    last: dict[str, Any] | None = None
    try:
        async for chunk in stream:
            usage = chunk.get("usage")
            if usage:
                record.usage = Usage.from_openai(usage)
            produced += openai_api.has_content(chunk)
            for out in guard.filter(chunk) if guard is not None else (chunk,):
                data = encoder.chunk(out)
                if data:
                    await response.write(data)
            last = chunk
        if guard is not None:
            for out in guard.finish(last):
                await response.write(encoder.chunk(out))
        await response.write(encoder.end())
    except ProviderError as exc:
        record.error_code = errors.STREAM_INTERRUPTED
        await response.write(encoder.error(errors.stream_broken(route_name)))
        log.warning("upstream stream broke for request %s: %s", record.request_id, exc.outcome)
    except ConnectionResetError:
        record.error_code = errors.CLIENT_DISCONNECTED
        return False
    finally:
        await stream.aclose()
        if guard is not None:
            record.verdicts.append(guard.verdict)
        if not record.usage.completion_tokens and produced:
            # Cut short before the provider's usage chunk: charge what it produced.
            chat = parsed.native.translate()
            record.usage = estimate_usage(chat.body, produced)
    return True
