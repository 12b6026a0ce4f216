"""HTTP handlers: thin adapters that name the endpoint's dialect and its pipeline step
(``pipeline``), plus the model list, health, readiness and metrics endpoints. Every refusal is
an error in the client's API format with a stable code."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from data_plane import errors
from data_plane.dialects import anthropic as anthropic_api
from data_plane.dialects import openai as openai_api
from data_plane.dialects.anthropic import ANTHROPIC
from data_plane.dialects.openai import OPENAI
from data_plane.dialects.responses import RESPONSES
from data_plane.errors import ApiError
from data_plane.http import chat, pipeline, reads
from data_plane.http.appkeys import METRICS, STORE, SUPERVISOR
from data_plane.http.embeddings import serve_embeddings
from data_plane.http.pipeline import json_response
from data_plane.policy.auth import allowed_routes, authorize
from data_plane.tokens import encoding


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await pipeline.handle(request, OPENAI, chat.serve_chat)


async def messages(request: web.Request) -> web.StreamResponse:
    """Anthropic's Messages API, through the same pipeline. A client asking for an input
    token estimate gets the shipped tokenizer loaded first (once, off the event loop)."""
    if request.headers.get(anthropic_api.ESTIMATE_ASK) == "estimate" and not encoding.loaded():
        await asyncio.to_thread(encoding.load)
    return await pipeline.handle(request, ANTHROPIC, chat.serve_chat)


async def responses(request: web.Request) -> web.StreamResponse:
    """OpenAI's Responses API, through the same pipeline."""
    return await pipeline.handle(request, RESPONSES, chat.serve_chat)


async def stored_response(request: web.Request) -> web.StreamResponse:
    return await pipeline.handle(request, OPENAI, reads.serve_stored_response)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    """Anthropic's token counting (authentication and route access only)."""
    return await pipeline.handle(request, ANTHROPIC, reads.serve_count_tokens)


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await pipeline.handle(request, OPENAI, serve_embeddings)


async def list_models(request: web.Request) -> web.Response:
    found = pipeline.principal_of(request)
    if isinstance(found, ApiError):
        return pipeline.refuse(request, found, OPENAI)
    policy, principal = found
    names = [route.name for route in allowed_routes(policy, principal)]
    models = openai_api.model_list(names, principal.tenant.slug)
    if _anthropic_client(request):
        models = anthropic_api.model_list(models)
    return json_response(models)


def _anthropic_client(request: web.Request) -> bool:
    """Anthropic's clients send ``anthropic-version`` on every request: they get the model
    list with Anthropic's fields too (OpenAI's stay, so one shape serves both)."""
    return "anthropic-version" in request.headers


async def retrieve_model(request: web.Request) -> web.Response:
    """``GET /v1/models/{id}``: one route the key may use, or the 404 an unknown name gets
    (a route the key is not granted is not revealed either)."""
    found = pipeline.principal_of(request)
    if isinstance(found, ApiError):
        return pipeline.refuse(request, found, OPENAI)
    policy, principal = found
    name = request.match_info["model"]
    route = authorize(policy, principal, name)
    if isinstance(route, ApiError):
        return pipeline.error_response(errors.model_not_found(name), OPENAI)
    model = openai_api.model_object(route.name, principal.tenant.slug)
    return json_response(anthropic_api.model_info(model) if _anthropic_client(request) else model)


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    policy = request.app[STORE].current
    if policy is None:
        return json_response({"status": "not ready", "reason": "no snapshot loaded"}, 503)
    supervisor = request.app.get(SUPERVISOR)
    failing = sorted(supervisor.down) if supervisor is not None else []
    if failing:
        reason = f"background task(s) failing: {', '.join(failing)}"
        return json_response({"status": "not ready", "reason": reason}, 503)
    return json_response({"status": "ready", "snapshot_version": policy.version})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
