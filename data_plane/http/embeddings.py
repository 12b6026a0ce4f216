"""OpenAI's embeddings endpoint on the shared request path (``pipeline.handle``): tags,
route, input guardrails, admission and the targets' ``embed``; no output to guard."""

from __future__ import annotations

from aiohttp import web

from data_plane import tracing
from data_plane.dialects import embeddings as embeddings_api
from data_plane.errors import ApiError
from data_plane.guardrails import Action
from data_plane.guardrails.enforce import blocked_error, guard_input
from data_plane.http import pipeline


async def serve_embeddings(context: pipeline.Context) -> web.StreamResponse:
    record = context.record
    raw = await context.request.read()
    parsed = embeddings_api.parse_embeddings_request(raw, record.request_id)
    if isinstance(parsed, ApiError):
        return context.fail(parsed)
    untagged = pipeline.tag(context, None)
    if untagged is not None:
        return context.fail(untagged)
    routed = pipeline.route_for(context, str(parsed.body["model"]))
    if isinstance(routed, ApiError):
        return context.fail(routed)
    route, guard = routed
    if guard is not None and guard.on_input:
        inputs = embeddings_api.as_chat(parsed)
        with tracing.step(context.trace, "asc.guardrails.input") as span:
            guarded, verdict = guard_input(guard.compiled, inputs)
            tracing.annotate(span, "asc.guardrails.decision", verdict.decision)
        record.verdicts.append(verdict)
        if verdict.decision is Action.BLOCK:
            return context.fail(blocked_error(verdict))
        if guarded is not inputs:  # redacted
            parsed = embeddings_api.with_texts(parsed, guarded)
    call = await pipeline.admit(context, route, len(raw), embeddings_api.admission_body(parsed))
    if isinstance(call, ApiError):
        return context.fail(call)
    body = await call.embed(parsed)
    if isinstance(body, ApiError):
        return context.fail(body)
    body["model"] = route.name
    return pipeline.json_response(body)
