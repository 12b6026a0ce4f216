"""HTTP handlers: thin adapters that read the request, call the pure core and the proxy,
and write the answer. Every refusal is an OpenAI-format error with a stable code."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from data_plane import errors, openai_api, proxy
from data_plane.audit import build_audit
from data_plane.auth import (
    END_USER_HEADER,
    Principal,
    allowed_routes,
    authenticate,
    authorize,
)
from data_plane.errors import ApiError
from data_plane.guarding import ChunkGuard, blocked_error, guard_completion, guard_input
from data_plane.guardrail_policy import for_route
from data_plane.guardrails import Action, CompiledGuardrails
from data_plane.keys import ADMITTER, METRICS, PROVIDERS, RANDOM, REQUEST_ID, STORE, USAGE
from data_plane.policy import CompiledPolicy
from data_plane.providers.base import ChatRequest, ProviderError, Target, Usage
from data_plane.routing import order_targets
from data_plane.usage import RequestRecord, build_event, estimate_usage

log = logging.getLogger(__name__)

JSON = "application/json"


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def error_response(error: ApiError) -> web.Response:
    response = json_response(error.body(), error.status)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


def _refuse(request: web.Request, error: ApiError) -> web.Response:
    request.app[METRICS].denials.labels(error.code).inc()
    return error_response(error)


def _principal(request: web.Request) -> tuple[CompiledPolicy, Principal] | ApiError:
    policy = request.app[STORE].current
    if policy is None:
        return errors.not_ready()
    headers = request.headers
    principal = authenticate(
        policy, headers.get("Authorization"), time.time(), headers.get(END_USER_HEADER)
    )
    if isinstance(principal, ApiError):
        return principal
    return policy, principal


async def list_models(request: web.Request) -> web.Response:
    found = _principal(request)
    if isinstance(found, ApiError):
        return _refuse(request, found)
    policy, principal = found
    names = [route.name for route in allowed_routes(policy, principal)]
    return json_response(openai_api.model_list(names, principal.tenant.slug))


async def chat_completions(request: web.Request) -> web.StreamResponse:
    found = _principal(request)
    if isinstance(found, ApiError):
        return _refuse(request, found)
    policy, principal = found
    record = RequestRecord(
        request_id=request[REQUEST_ID],
        ts_unix_ms=int(time.time() * 1000),
        started=time.monotonic(),
        snapshot_version=policy.version,
        principal=principal,
    )
    try:
        with request.app[ADMITTER].slot(principal.key) as refused:
            if refused is not None:
                return _fail(request, record, refused)
            response = await _serve_chat(request, policy, record)
    except BaseException:
        record.status, record.error_code = 500, errors.INTERNAL_ERROR
        raise
    finally:
        _finish(request.app, record)
    return response


async def _serve_chat(
    request: web.Request, policy: CompiledPolicy, record: RequestRecord
) -> web.StreamResponse:
    raw = await request.read()
    chat = openai_api.parse_chat_request(raw, record.request_id)
    if isinstance(chat, ApiError):
        return _fail(request, record, chat)
    record.route_name = str(chat.body["model"])
    record.stream = chat.stream
    assert record.principal is not None  # set by the caller
    route = authorize(policy, record.principal, record.route_name)
    if isinstance(route, ApiError):
        return _fail(request, record, route)
    record.route = route
    guard = for_route(policy.guardrails, route.tenant_id, route.id)
    if guard is not None and guard.on_input:
        chat, verdict = guard_input(guard.compiled, chat)
        record.verdicts.append(verdict)
        if verdict.decision is Action.BLOCK:
            return _fail(request, record, blocked_error(verdict))
    output_guard = guard.compiled if guard is not None and guard.on_output else None
    admission = await request.app[ADMITTER].admit(
        policy, record.principal.key, route, len(raw), chat.body
    )
    if isinstance(admission, ApiError):
        return _fail(request, record, admission)
    record.admission = admission
    targets = order_targets(
        route.targets, request.app[RANDOM], record.principal.tenant.allowed_regions
    )
    if not targets:
        return _fail(request, record, errors.no_target_available(route.name))
    if chat.stream:
        return await _stream(request, chat, targets, record, output_guard)
    body = await proxy.complete(request.app[PROVIDERS], targets, chat, record)
    if isinstance(body, ApiError):
        return _fail(request, record, body)
    if output_guard is not None:
        record.verdicts.append(guard_completion(output_guard, body))
    body["model"] = route.name
    return json_response(body)


def _fail(request: web.Request, record: RequestRecord, error: ApiError) -> web.Response:
    record.status, record.error_code = error.status, error.code
    if error.status < 500:
        request.app[METRICS].denials.labels(error.code).inc()
    return error_response(error)


async def _stream(
    request: web.Request,
    chat: ChatRequest,
    targets: list[Target],
    record: RequestRecord,
    output_guard: CompiledGuardrails | None,
) -> web.StreamResponse:
    opened = await proxy.open_stream(request.app[PROVIDERS], targets, chat, record)
    if isinstance(opened, ApiError):
        return _fail(request, record, opened)
    first, chunks = opened
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "x-request-id": record.request_id,
        }
    )
    await response.prepare(request)
    with_usage = openai_api.include_usage(chat)
    route_name = record.route_name
    guard = ChunkGuard(output_guard) if output_guard is not None else None
    produced = 0  # content chunks received: what the provider produced, if it never says
    open_ = True
    try:
        chunk: dict[str, Any] | None = first
        while chunk is not None:
            usage = chunk.get("usage")
            if usage:
                record.usage = Usage.from_openai(usage)
            produced += openai_api.has_content(chunk)
            if with_usage or not (usage and not chunk.get("choices")):
                if not with_usage:
                    chunk.pop("usage", None)
                chunk["model"] = route_name
                for out in guard.filter(chunk) if guard is not None else (chunk,):
                    await response.write(openai_api.sse_event(out))
            last, chunk = chunk, await anext(chunks, None)
        if guard is not None:
            for out in guard.finish(last):
                await response.write(openai_api.sse_event(out))
        await response.write(openai_api.SSE_DONE)
    except ProviderError as exc:
        record.error_code = "stream_interrupted"
        await response.write(openai_api.sse_event(errors.upstream_error(route_name, 1).body()))
        log.warning("upstream stream broke for request %s: %s", record.request_id, exc.outcome)
    except ConnectionResetError:
        record.error_code = "client_disconnected"
        open_ = False
    finally:
        await proxy.close_stream(chunks)
        if guard is not None:
            record.verdicts.append(guard.verdict)
        if not record.usage.completion_tokens and produced:
            # Cut short before the provider's usage chunk: charge what it produced.
            record.usage = estimate_usage(chat.body, produced)
    if open_:
        await response.write_eof()
    return response


def _finish(app: web.Application, record: RequestRecord) -> None:
    """Metrics and the usage event of one chat request (after authentication)."""
    latency = time.monotonic() - record.started
    label = record.route.name if record.route else "-"  # never a client-chosen label value
    metrics = app[METRICS]
    metrics.requests.labels(label, str(record.status)).inc()
    metrics.latency.labels(label).observe(latency)
    if record.target is not None:
        metrics.ttft.labels(label).observe(record.ttft_ms / 1000)
        metrics.tokens.labels(label, "prompt").inc(record.usage.prompt_tokens)
        metrics.tokens.labels(label, "completion").inc(record.usage.completion_tokens)
    for attempt in record.fallbacks:
        metrics.fallbacks.labels(attempt.provider_id, attempt.outcome).inc()
    event = build_event(record, int(latency * 1000))
    app[ADMITTER].settle(record.admission, record.usage, event.cost_nano_usd)
    app[USAGE].record(event, build_audit(event, record.verdicts))


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    policy = request.app[STORE].current
    if policy is None:
        return json_response({"status": "not ready", "reason": "no snapshot loaded"}, 503)
    return json_response({"status": "ready", "snapshot_version": policy.version})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
