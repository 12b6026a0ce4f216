"""Wiring: ``create_app(settings)`` builds the aiohttp application and its resources.

The background tasks (snapshot stream, lease client, usage batcher and sender) run under
one ``Supervisor``: restarted after any error, counted, and reported by ``/readyz`` when they
keep failing.

Long-lived resources are ``cleanup_ctx`` entries, set up in this order and torn down in the
reverse one: the tracer (its spans flushed last), the disk snapshot, the upstream HTTP
session, the response cache (its Redis connections, when configured), the control-plane
channel with the snapshot stream, and the usage reporter. Torn
down last-in first-out, the usage reporter flushes its queue to the spool after the server
has drained in-flight requests and before the channel closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry.sdk.trace.export import SpanExporter

from data_plane import errors, rpc, tracing
from data_plane.cache.backends import Backend, MemoryBackend, RedisBackend
from data_plane.cache.cache import ResponseCache
from data_plane.dialects.anthropic import ANTHROPIC
from data_plane.dialects.openai import OPENAI
from data_plane.http import handlers
from data_plane.http.appkeys import (
    ADMITTER,
    CONFIG_CLIENT,
    LEASE_SOURCE,
    METRICS,
    NODE,
    PROVIDERS,
    RANDOM,
    REQUEST_ID,
    SETTINGS,
    STORE,
    SUPERVISOR,
    USAGE,
    USAGE_CLIENT,
)
from data_plane.http.caching import CACHE
from data_plane.http.owners import ResponseOwners
from data_plane.http.pipeline import HEALTH, OWNERS, Dialect, error_response
from data_plane.http.traced import TRACER
from data_plane.limits.admission import Admitter
from data_plane.limits.client import LeaseClient, LeaseSource
from data_plane.limits.leases import LeaseBook
from data_plane.metrics import Metrics
from data_plane.policy.health import HealthBook
from data_plane.settings import Settings
from data_plane.snapshots.client import ConfigClient, make_node
from data_plane.snapshots.store import SnapshotStore
from data_plane.supervisor import Supervisor
from data_plane.upstream.client import UpstreamClient
from data_plane.upstream.providers.registry import build_providers
from data_plane.usage.reporter import UsageClient, UsageReporter
from shared import otel
from shared.crypto import Keyring

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024


class RequestIds:
    """Request ids unique across processes without a system call per request: a random
    per-process prefix and a counter. Ids are always the gateway's own (they key usage and
    audit records, so a client must not be able to choose or repeat one)."""

    def __init__(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):08x}"


REQUEST_IDS = web.AppKey("request_ids", RequestIds)


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id on every response; aiohttp refusals and unexpected exceptions as errors in
    the endpoint's format, Anthropic's under /v1/messages and OpenAI's elsewhere (an
    unexpected exception is logged with the request id)."""
    request_id = request.app[REQUEST_IDS].next()
    request[REQUEST_ID] = request_id
    dialect: Dialect = ANTHROPIC if request.path.startswith("/v1/messages") else OPENAI
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = error_response(errors.from_http_status(exc.status, exc.reason), dialect)
    except Exception:
        log.exception(
            "unexpected error in request %s", request_id, extra={"request_id": request_id}
        )
        response = error_response(errors.internal_error(request_id), dialect)
    if not response.prepared:
        response.headers["x-request-id"] = request_id
    return response


def create_app(
    settings: Settings,
    *,
    usage_client: UsageClient | None = None,
    lease_source: LeaseSource | None = None,
    rand: random.Random | None = None,
    span_exporter: SpanExporter | None = None,
) -> web.Application:
    """The data-plane app. ``usage_client`` and ``lease_source`` replace the gRPC
    UsageService and LeaseService clients (tests, or a node without a control plane);
    ``rand`` drives target selection and backoff jitter; ``span_exporter`` receives the
    request traces (tests) in place of the OTLP endpoint of the settings."""
    app = web.Application(middlewares=[request_context], client_max_size=MAX_BODY_BYTES)
    keyring = Keyring(settings.seal_key) if settings.seal_key else None
    app[SETTINGS] = settings
    app[REQUEST_IDS] = RequestIds()
    app[NODE] = make_node(settings.node_id, settings.region)
    app[METRICS] = metrics = Metrics()
    app[HEALTH] = HealthBook(listener=metrics.circuit_changed)
    app[OWNERS] = ResponseOwners()
    app[STORE] = SnapshotStore(settings.snapshot_path, keyring)
    app[RANDOM] = rand or random.Random()
    app.cleanup_ctx.append(_tracing(span_exporter))  # first in, so the last torn down
    if usage_client is not None:
        app[USAGE_CLIENT] = usage_client
    if lease_source is not None:
        app[LEASE_SOURCE] = lease_source
    app.router.add_post("/v1/chat/completions", handlers.chat_completions)
    app.router.add_post("/v1/messages", handlers.messages)
    app.router.add_post("/v1/messages/count_tokens", handlers.count_tokens)
    app.router.add_post("/v1/responses", handlers.responses)
    app.router.add_get("/v1/responses/{response_id}", handlers.stored_response)
    app.router.add_post("/v1/embeddings", handlers.embeddings)
    app.router.add_get("/v1/models", handlers.list_models)
    app.router.add_get("/v1/models/{model:.+}", handlers.retrieve_model)
    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    app.cleanup_ctx.extend(
        [_disk_snapshot, _upstream_client, _response_cache, _control_plane_and_usage]
    )
    return app


def _tracing(
    exporter: SpanExporter | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The tracer (None: tracing off); its spans flushed at shutdown, off the event loop."""

    async def traced(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        provider = await asyncio.to_thread(  # resource detection blocks: off the loop
            otel.build_provider,
            "asc-data-plane",
            settings.node_id,
            endpoint=settings.otlp_endpoint,
            exporter=exporter,
        )
        app[TRACER] = tracing.tracer_of(provider) if provider is not None else None
        try:
            yield
        finally:
            if provider is not None:
                await asyncio.to_thread(provider.shutdown)

    return traced


async def _disk_snapshot(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    if store.current is None:
        if removed := await asyncio.to_thread(store.discard_staged):
            log.warning("removed %d unfinished snapshot copies beside %s", removed, store.path)
        policy = await asyncio.to_thread(store.load_from_disk)
        if policy is not None:
            store.swap(policy)
            app[METRICS].snapshot_version.set(policy.version)
            log.info("loaded snapshot version %d from %s", policy.version, store.path)
    yield


async def _upstream_client(app: web.Application) -> AsyncIterator[None]:
    async with UpstreamClient() as client:
        app[PROVIDERS] = build_providers(client)
        yield


async def _response_cache(app: web.Application) -> AsyncIterator[None]:
    """The response cache: Redis (shared by every data plane) when configured, else in
    process. Nothing connects until a route that caches is asked for."""
    settings = app[SETTINGS]
    backend: Backend = MemoryBackend(settings.cache_max_entries, settings.cache_max_bytes)
    if settings.cache_redis_url:
        backend = RedisBackend(
            settings.cache_redis_url, settings.cache_redis_prefix, settings.cache_timeout_s
        )
    app[CACHE] = cache = ResponseCache(
        backend, app[METRICS], max_entry_bytes=settings.cache_max_entry_bytes
    )
    try:
        yield
    finally:
        await cache.close()


async def _control_plane_and_usage(app: web.Application) -> AsyncIterator[None]:
    settings, metrics = app[SETTINGS], app[METRICS]
    backoff = (settings.backoff_min_s, settings.backoff_max_s)
    app[SUPERVISOR] = supervisor = Supervisor(
        backoff=backoff,
        rand=app[RANDOM],
        give_up_after=settings.task_give_up_after,
        stable_s=settings.task_stable_s,
        on_restart=metrics.task_restarted,
        on_down=metrics.task_down_changed,
    )
    channel = (
        rpc.open_channel(settings.control_plane, settings.tls) if settings.control_plane else None
    )
    config_task: asyncio.Task[None] | None = None
    if channel is not None:
        client = ConfigClient(
            channel, app[STORE], app[NODE], metrics, backoff=backoff, rand=app[RANDOM]
        )
        app[CONFIG_CLIENT] = client
        config_task = supervisor.spawn("config-client", client.run)
    usage_client = app.get(USAGE_CLIENT)
    if usage_client is None and channel is not None:
        usage_client = rpc.GrpcUsageClient(channel, settings.rpc_timeout_s)
    lease_source = app.get(LEASE_SOURCE)
    if lease_source is None and channel is not None:
        lease_source = rpc.GrpcLeaseSource(channel, settings.rpc_timeout_s)
    leases = LeaseClient(LeaseBook(), lease_source, settings.node_id, supervisor=supervisor)
    app[ADMITTER] = admitter = Admitter(leases)
    app[STORE].on_swap(admitter.policy_changed)
    leases.start()
    reporter = UsageReporter(
        app[NODE],
        settings.spool_dir,
        usage_client,
        metrics,
        flush_interval=settings.usage_flush_interval_s,
        commit_window=settings.durable_commit_s,
        batch_max=settings.usage_batch_max,
        queue_max=settings.usage_queue_max,
        backoff=backoff,
        rand=app[RANDOM],
        supervisor=supervisor,
    )
    app[USAGE] = reporter
    await reporter.start()
    try:
        yield
    finally:
        await leases.close()
        await reporter.close()
        if config_task is not None:
            config_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await config_task
        if channel is not None:
            await channel.close(grace=None)
