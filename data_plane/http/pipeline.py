"""The request path every model endpoint shares (DESIGN.md section 3), whatever the client's
API dialect: authenticate, authorize, guard the input, admit (limits), route and call the
providers, guard the output, and record one usage and audit event.

A ``Dialect`` (OpenAI's chat API, Anthropic's Messages API, OpenAI's Responses API) parses
the client's body once into an ``Inbound``: the request to forward and the small view policy
decides on (route name, text to guard, stream flag, admission figures, end user). A target
that speaks the client's format gets the request as the client sent it and its answer goes
back as it came (``chat._forwarded``, ``chat._relay_native``), read on the way for usage and
output guardrails; any other target gets it translated to an OpenAI chat request, and its
answer is rebuilt in the client's shapes (``Dialect.answer`` / ``encoder``). Errors are in
the client's own format. Policy holds the same way for every dialect and every provider.
This module holds the steps every endpoint shares (``handle``, ``admit``, ``route_for``,
``tag``, ``finish``); serving a model request from them is ``chat.serve_chat``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from data_plane import errors, tracing
from data_plane.dialects import openai as openai_api
from data_plane.dialects.inbound import Inbound
from data_plane.errors import ApiError
from data_plane.guardrails import CompiledGuardrails, Verdict
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
from data_plane.types import Event, Usage
from data_plane.upstream.failover import Call, Tried
from data_plane.usage.audit import build_audit
from data_plane.usage.record import RequestRecord, build_event

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
            context.policy,
            context.principal.key,
            route,
            size,
            body,
            record.tags,
            record.ts_unix_ms / 1000,
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
