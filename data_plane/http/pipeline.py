"""The request path every model endpoint shares (DESIGN.md section 3), whatever the client's
API dialect: authenticate, authorize, guard the input, admit (limits), route and call the
providers, guard the output, and record one usage and audit event.

A ``Dialect`` (OpenAI's chat API, Anthropic's Messages API, OpenAI's Responses API) parses
the client's body once into an ``Inbound``: the request to forward and the small view policy
decides on (route name, text to guard, stream flag, admission figures, end user). A target
that speaks the client's format gets the request as the client sent it and its answer goes
back as it came (``_forwarded``, ``_relay_native``), read on the way for usage and output
guardrails; any other target gets it translated to an OpenAI chat request, and its answer is
rebuilt in the client's shapes (``Dialect.answer`` / ``encoder``). Errors are in the
client's own format. Policy holds the same way for every dialect and every provider.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson
from aiohttp import web

from data_plane import errors, tracing
from data_plane.dialects import openai as openai_api
from data_plane.dialects.guarding import changed, guard_body
from data_plane.dialects.inbound import Inbound, with_body
from data_plane.errors import ApiError
from data_plane.guardrails import Action, CompiledGuardrails, Verdict
from data_plane.guardrails.enforce import ChunkGuard, blocked_error, guard_completion
from data_plane.guardrails.policy import Guard, for_route
from data_plane.http import caching, traced
from data_plane.http.appkeys import (
    ADMITTER,
    METRICS,
    PROVIDERS,
    RANDOM,
    REQUEST_ID,
    SETTINGS,
    STORE,
    USAGE,
)
from data_plane.http.owners import Owner, ResponseOwners
from data_plane.policy import tags
from data_plane.policy.auth import END_USER_HEADER, Principal, authenticate, authorize
from data_plane.policy.compiled import CompiledPolicy, RouteEntry
from data_plane.policy.health import HealthBook
from data_plane.policy.routing import order_targets, outside_regions
from data_plane.types import OPENAI_CHAT, OPENAI_RESPONSES, Event, Forwarded, Usage
from data_plane.upstream.failover import Call, Stream, Tried
from data_plane.upstream.providers.base import ProviderError
from data_plane.usage.audit import build_audit
from data_plane.usage.record import RequestRecord, build_event, estimate_usage

log = logging.getLogger(__name__)

HEALTH = web.AppKey("health", HealthBook)
OWNERS = web.AppKey("response_owners", ResponseOwners)
JSON = "application/json"


class Encoder(Protocol):
    """OpenAI chunks to the bytes of the client's stream."""

    def chunk(self, chunk: dict[str, Any]) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, error: ApiError) -> bytes: ...


class Relay(Protocol):
    """The upstream's own events to the bytes of the client's stream (same format)."""

    def event(self, event: Event) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, error: ApiError) -> bytes: ...

    @property
    def verdict(self) -> Verdict: ...


class Dialect(Protocol):
    def parse(
        self, raw: bytes, request_id: str, headers: Mapping[str, str]
    ) -> Inbound | ApiError: ...

    def error_body(self, error: ApiError) -> dict[str, Any]: ...

    # Answers of targets that speak the client's format: guarded in place; streams relayed.
    def guard_answer(self, compiled: CompiledGuardrails, body: dict[str, Any]) -> Verdict: ...

    def relay(self, request: Inbound, compiled: CompiledGuardrails | None) -> Relay: ...

    # Answers of the other targets, as OpenAI chat completions and chunks.
    def answer(
        self, completion: dict[str, Any], route_name: str, request: Inbound
    ) -> dict[str, Any]: ...

    def encoder(self, request: Inbound, route_name: str) -> Encoder: ...


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def error_response(error: ApiError, dialect: Dialect = openai_api.OPENAI) -> web.Response:
    response = json_response(dialect.error_body(error), error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def refuse(request: web.Request, error: ApiError, dialect: Dialect) -> web.Response:
    """A refusal before a request record exists (no snapshot, no valid credentials)."""
    request.app[METRICS].denials.labels("-", error.code).inc()
    return error_response(error, dialect)


def principal_of(request: web.Request) -> tuple[CompiledPolicy, Principal] | ApiError:
    """Who is calling. The key comes as ``Authorization: Bearer`` or, as Anthropic's clients
    send it, ``x-api-key``."""
    policy = request.app[STORE].current
    if policy is None:
        return errors.not_ready()
    headers = request.headers
    authorization = headers.get("Authorization")
    if authorization is None and headers.get("x-api-key"):
        authorization = f"Bearer {headers['x-api-key']}"
    principal = authenticate(policy, authorization, time.time(), headers.get(END_USER_HEADER))
    if isinstance(principal, ApiError):
        return principal
    return policy, principal


@dataclass(slots=True)
class Context:
    request: web.Request
    dialect: Dialect
    policy: CompiledPolicy
    record: RequestRecord
    call: Call | None = None
    trace: tracing.RequestTrace | None = None  # None: tracing is off
    cache: caching.Plan | None = None  # set on a route with a response cache

    @property
    def principal(self) -> Principal:
        assert self.record.principal is not None  # set before any step runs
        return self.record.principal

    def fail(self, error: ApiError) -> web.Response:
        record = self.record
        record.status, record.error_code = error.status, error.code
        if error.status < 500:
            tenant = self.principal.tenant.slug  # a snapshot value, never client-chosen
            self.request.app[METRICS].denials.labels(tenant, error.code).inc()
        return error_response(error, self.dialect)


Step = Callable[[Context], Awaitable[web.StreamResponse]]


async def handle(request: web.Request, dialect: Dialect, serve: Step) -> web.StreamResponse:
    """Authenticate, hold a parallel-request slot, run ``serve``, record the outcome."""
    trace = traced.begin(request)
    found = principal_of(request)
    if isinstance(found, ApiError):
        traced.refused(trace, found)
        return refuse(request, found, dialect)
    policy, principal = found
    record = RequestRecord(
        request_id=request[REQUEST_ID],
        ts_unix_ms=int(time.time() * 1000),
        started=time.monotonic(),
        snapshot_version=policy.version,
        principal=principal,
    )
    context = Context(request, dialect, policy, record, trace=trace)
    traced.authenticated(trace, principal)
    try:
        with request.app[ADMITTER].slot(principal.key) as refused:
            response = context.fail(refused) if refused is not None else await serve(context)
    except BaseException:
        record.status, record.error_code = 500, errors.INTERNAL_ERROR
        raise
    finally:
        if context.call is not None:
            _note_tried(record, context.call.tried)
        stored = finish(request.app, record)
        traced.end(trace, record)
    if context.cache is not None:
        await caching.keep(request.app, context.cache, record, response)
    # Durable audit: the answer waits for its record to be on disk, and is withheld (fail
    # closed) when it cannot be (a stream has been sent by now: only its record waited).
    if stored is not None and not await stored and not response.prepared:
        return error_response(errors.audit_unavailable(), dialect)
    return response


def _note_tried(record: RequestRecord, tried: Tried) -> None:
    """Copy what the upstream call tried into the request's record."""
    for target, outcome in tried.failed:
        record.failed_attempt(target, outcome)
    if tried.target is not None:
        record.target = tried.target
        record.ttft_ms = int(tried.first_output_s * 1000)
    if tried.usage is not None:
        record.usage = tried.usage


def route_for(context: Context, name: str) -> tuple[RouteEntry, Guard | None] | ApiError:
    context.record.route_name = name
    route = authorize(context.policy, context.principal, name)
    if isinstance(route, ApiError):
        return route
    context.record.route = route
    return route, for_route(context.policy.guardrails, route.tenant_id, route.id)


async def admit(
    context: Context,
    route: RouteEntry,
    size: int,
    body: Mapping[str, Any],
    owner: Owner | None = None,
) -> Call | ApiError:
    """Limits, then the route's targets in the order to try them (residency applied; only
    ``owner``'s, when it is still one of them: the upstream keeping the conversation)."""
    app, record = context.request.app, context.record
    with tracing.step(context.trace, "asc.admission", current=True):  # lease asks join it
        admission = await app[ADMITTER].admit(
            context.policy, context.principal.key, route, size, body, record.tags
        )
    if isinstance(admission, ApiError):
        return admission
    record.admission = admission
    regions = context.principal.tenant.allowed_regions
    excluded = outside_regions(route.targets, regions)
    note = (
        f" {excluded} provider(s) outside this tenant's allowed regions "
        f"({', '.join(sorted(regions))}) were not tried."
        if excluded
        else ""
    )
    health = app[HEALTH]
    latency = health.latency if route.options.latency_aware else None
    targets = order_targets(route.targets, app[RANDOM], regions, latency)
    if owner is not None:
        targets = [t for t in targets if owner.owns(t)] or targets
    if not targets:
        return errors.no_target_available(route.name, note)
    context.call = Call(
        app[PROVIDERS],
        health,
        app[RANDOM],
        route.options,
        targets,
        started=record.started,
        route_name=route.name,
        note=note,
        trace=context.trace,
    )
    return context.call


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


# Wire formats whose ``metadata`` object carries tags (Anthropic's holds only a user id).
TAGGED_WIRES = frozenset({OPENAI_CHAT, OPENAI_RESPONSES})


def tag(context: Context, metadata: Any) -> ApiError | None:
    """The request's validated tags onto its record (``policy.tags``); a refusal otherwise.
    Nearly free when neither the request, its key nor its project carries any."""
    key, tenant = context.principal.key, context.principal.tenant
    header = context.request.headers.get(tags.HEADER)
    project = context.policy.project_tags.get(key.project_id, ()) if key.project_id else ()
    if header is None and metadata is None and not key.tags and not project:
        return None
    fixed = tags.fixed_tags(tenant.tag_rules, project, key.tags)
    found = tags.request_tags(tenant.tag_rules, tenant.drop_unknown_tags, fixed, metadata, header)
    if isinstance(found, ApiError):
        return found
    context.record.tags = found
    return None


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


def finish(app: web.Application, record: RequestRecord) -> asyncio.Future[bool] | None:
    """Metrics and the usage event of one request (after authentication). For a tenant in
    durable-audit mode, the future that says when its record is on disk (the answer waits for
    it; a stream has been sent by then: only its record is made durable)."""
    latency = time.monotonic() - record.started
    label = record.route.name if record.route else "-"  # never a client-chosen label value
    metrics = app[METRICS]
    series = metrics.route(label)
    series.requests(record.status).inc()
    series.latency.observe(latency)
    if record.target is not None:
        series.ttft.observe(record.ttft_ms / 1000)
        series.prompt.inc(record.usage.prompt_tokens)
        series.completion.inc(record.usage.completion_tokens)
    for attempt in record.fallbacks:
        metrics.fallbacks.labels(attempt.provider_id, attempt.outcome).inc()
    event = build_event(record, int(latency * 1000))
    # A cached answer asked no provider for tokens: limits count the request, not them.
    spent = Usage() if record.cache_hit else record.usage
    app[ADMITTER].settle(record.admission, spent, event.cost_nano_usd)
    tenant = record.principal.tenant if record.principal is not None else None
    durable = tenant is not None and not app[SETTINGS].durable_audit_tenants.isdisjoint(
        (tenant.id, tenant.slug)
    )
    audit = build_audit(event, record.verdicts, record.dropped)
    return app[USAGE].record(event, audit, durable=durable)
