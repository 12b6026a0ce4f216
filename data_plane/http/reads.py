"""The model endpoints that generate nothing: Anthropic's token counting and reading back a
stored Responses API answer. Authentication and route access as on every endpoint
(``pipeline.handle``, ``pipeline.route_for``); no limits, no guardrails: nothing is produced.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from data_plane import errors
from data_plane.dialects import anthropic as anthropic_api
from data_plane.errors import ApiError
from data_plane.http import pipeline
from data_plane.http.appkeys import PROVIDERS, RANDOM
from data_plane.http.pipeline import JSON, Context, json_response
from data_plane.policy.routing import order_targets
from data_plane.tokens import encoding
from data_plane.upstream.providers.base import ProviderError, ResponseStore, TokenCounting


async def serve_stored_response(context: Context) -> web.StreamResponse:
    """``GET /v1/responses/{id}``: a Responses API answer this node served, read back from
    the upstream (and credential) that keeps it; route access applies. Elsewhere a 404 says
    why: only an OpenAI-family upstream keeps responses, and only ones served through it."""
    request = context.request
    response_id = request.match_info["response_id"]
    owner = request.app[pipeline.OWNERS].owner(response_id, context.principal.tenant.id)
    route = context.policy.routes.get(owner.route_id) if owner is not None else None
    if owner is None or route is None:
        return context.fail(errors.response_not_kept(response_id))
    routed = pipeline.route_for(context, route.name)
    if isinstance(routed, ApiError):
        return context.fail(routed)
    providers = request.app[PROVIDERS]
    for target in route.targets:
        provider = providers.get(target.kind)
        if owner.owns(target) and isinstance(provider, ResponseStore):
            try:
                answer = await provider.retrieve_response(
                    target,
                    response_id,
                    route.name,
                    connect_timeout_s=route.options.connect_timeout_s,
                )
            except ProviderError as exc:
                return context.fail(errors.upstream_rejected(exc.status or 502, exc.message))
            return web.Response(body=answer.raw, content_type=JSON)
    return context.fail(errors.response_not_kept(response_id))


ESTIMATE_HEADER = "x-asc-token-count"
TOKENIZER_HEADER = "x-asc-tokenizer"


async def serve_count_tokens(context: Context) -> web.StreamResponse:
    """``/v1/messages/count_tokens``: authentication and route access only (nothing is
    generated, so no limits). The first of the route's targets that counts tokens itself
    (Anthropic) answers, the request forwarded as it is; otherwise the answer is an estimate
    by the tokenizer shipped with the gateway (``tokens.encoding``), marked so in the
    ``x-asc-token-count: estimate`` header, ``x-asc-tokenizer`` naming what counted."""
    request, record = context.request, context.record
    raw = await request.read()
    body = anthropic_api.parse_count_request(raw)
    if isinstance(body, ApiError):
        return context.fail(body)
    routed = pipeline.route_for(context, str(body["model"]))
    if isinstance(routed, ApiError):
        return context.fail(routed)
    route = routed[0]
    native = anthropic_api.count_request(raw, body, request.headers).native
    regions = context.principal.tenant.allowed_regions
    providers = request.app[PROVIDERS]
    for target in order_targets(route.targets, request.app[RANDOM], regions, None):
        provider = providers.get(target.kind)
        if not isinstance(provider, TokenCounting):
            continue
        try:
            answer = await provider.count_tokens(
                target, native, connect_timeout_s=route.options.connect_timeout_s
            )
        except ProviderError as exc:
            record.failed_attempt(target, exc.outcome)
            if not exc.retryable:
                return context.fail(errors.upstream_rejected(exc.status, exc.message))
            continue
        return json_response(answer)
    answer, tokenizer = await asyncio.to_thread(_estimate, body)
    response = json_response(answer)
    response.headers[ESTIMATE_HEADER] = "estimate"
    response.headers[TOKENIZER_HEADER] = tokenizer
    return response


def _estimate(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """An estimated count by the shipped tokenizer (loaded on the first call), or by
    characters when it cannot be loaded; and which of the two counted."""
    count = encoding.load()
    tokenizer = encoding.NAME if count is not None else "characters/4"
    return anthropic_api.estimate_count(body, count), tokenizer
