"""The response cache on the request path (docs/cache.md).

A route with a cache TTL asks the cache after the request was authenticated, authorised,
guarded on input and admitted, so a hit passes every policy a miss does and is recorded like
any request: ``cache_hit``, no target, cost 0 and the cost saved (the entry's), its tokens.
The key (``cache.key``) is computed from the body as it would go upstream, after redaction.

A miss is stored when the request ends only if its answer is successful and whole: status
200, no error (a stream cut short or a client gone records one), no blocking guardrail
verdict, served by a target. What is stored is exactly what the client was sent (after the
output guard), replayed as it is: a JSON body, or the whole event stream in the client's
dialect. The output guard is not run again on a hit: the stored answer already passed it,
and the key names that policy (a changed policy misses).

Clients opt out per request: ``Cache-Control: no-cache`` (not served from the cache) and
``no-store`` (not stored). The answer says ``x-asc-cache: hit`` or ``miss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from data_plane import errors
from data_plane.cache.cache import ResponseCache
from data_plane.cache.entry import EVENT_STREAM, JSON, Entry
from data_plane.cache.key import cache_key
from data_plane.dialects.inbound import Inbound
from data_plane.guardrails import Action
from data_plane.guardrails.policy import Guard
from data_plane.policy.compiled import RouteEntry
from data_plane.usage.record import RequestRecord, cost_of

CACHE = web.AppKey("response_cache", ResponseCache)
HEADER = "x-asc-cache"
HIT, MISS = "hit", "miss"


@dataclass(frozen=True, slots=True)
class Plan:
    key: str
    route: str  # the route's name: a snapshot value, the metrics' label
    ttl_s: int
    read: bool  # may be served from the cache
    write: bool  # may be stored


def directives(cache_control: str | None) -> tuple[bool, bool]:
    """(read, write) as the client's ``Cache-Control`` allows: ``no-cache`` forbids serving
    from the cache, ``no-store`` storing; other directives are ignored."""
    if not cache_control:
        return True, True
    names = {part.split("=", 1)[0].strip().lower() for part in cache_control.split(",")}
    return "no-cache" not in names, "no-store" not in names


def plan(
    headers: Mapping[str, str], route: RouteEntry, request: Inbound, guard: Guard | None
) -> Plan | None:
    """What the cache may do for this request on a route that caches (None: nothing).
    ``guard``: the guardrail policy of the route."""
    read, write = directives(headers.get("Cache-Control"))
    if not (read or write):
        return None
    native = request.native
    key = cache_key(
        tenant_id=route.tenant_id,
        route_id=route.id,
        targets=[f"{t.provider_id}/{t.model_id}/{t.provider_model}" for t in route.targets],
        wire=native.wire,
        stream=native.stream,
        headers=native.headers,
        body=native.body,
        output_policy=guard.fingerprint if guard is not None and guard.on_output else "",
    )
    return Plan(key, route.name, route.options.cache_ttl_s, read, write)


async def serve(
    request: web.Request, record: RequestRecord, found: Plan | None
) -> web.StreamResponse | None:
    """The cached answer, recorded as a hit, or None (a miss, or the client said no-cache)."""
    if found is None or not found.read:
        return None
    entry = await request.app[CACHE].get(found.key, found.route)
    if entry is None:
        return None
    record.cache_hit = True
    record.usage = entry.usage
    record.cost_saved_nano_usd = entry.cost_nano_usd
    if not entry.stream:
        return web.Response(body=entry.body, content_type=JSON, headers={HEADER: HIT})
    response = web.StreamResponse(
        headers={
            "Content-Type": EVENT_STREAM,
            "Cache-Control": "no-cache",
            "x-request-id": record.request_id,
            HEADER: HIT,
        }
    )
    await response.prepare(request)
    try:
        await response.write(entry.body)
        await response.write_eof()
    except ConnectionResetError:
        record.error_code = errors.CLIENT_DISCONNECTED
    return response


class Recording(web.StreamResponse):
    """A stream response that keeps the bytes it sends, up to ``limit`` (beyond it, none),
    so a whole stream can be stored once it has ended."""

    def __init__(self, limit: int, headers: Mapping[str, str]) -> None:
        super().__init__(headers=headers)
        self._limit = limit
        self._parts: list[bytes] | None = []
        self._size = 0
        self._ended = False

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        parts = self._parts
        if parts is not None:
            self._size += len(data)
            if self._size > self._limit:
                self._parts = None
            else:
                parts.append(bytes(data))
        await super().write(data)

    async def write_eof(self, data: bytes = b"") -> None:
        if data:
            await self.write(data)
        await super().write_eof()
        self._ended = True

    def recorded(self) -> bytes | None:
        """Everything sent, once the stream ended (None before, or when over the limit)."""
        return b"".join(self._parts) if self._ended and self._parts is not None else None


def stream_response(
    request: web.Request, found: Plan | None, headers: dict[str, str]
) -> web.StreamResponse:
    """The response a stream is relayed into: one that records it when it may be stored."""
    if found is None:
        return web.StreamResponse(headers=headers)
    headers[HEADER] = MISS
    if not found.write:
        return web.StreamResponse(headers=headers)
    return Recording(request.app[CACHE].max_entry_bytes, headers)


def storable(record: RequestRecord) -> bool:
    """A successful, whole answer from a target, that no guardrail blocked."""
    return (
        record.status == 200
        and not record.error_code
        and record.target is not None
        and not record.cache_hit
        and all(v.decision is not Action.BLOCK for v in record.verdicts)
    )


async def keep(
    app: web.Application, found: Plan, record: RequestRecord, response: web.StreamResponse
) -> None:
    """After a request on a caching route: say it missed, and store its answer if it may."""
    if record.cache_hit:
        return
    if not response.prepared:
        response.headers[HEADER] = MISS
    if not found.write or not storable(record):
        return
    if isinstance(response, Recording):
        body = response.recorded()
    elif isinstance(response, web.Response) and isinstance(response.body, bytes):
        body = response.body
    else:
        return
    if body is None:
        return
    entry = Entry(body, record.stream, record.usage, cost_of(record.target, record.usage))
    await app[CACHE].put(found.key, found.route, entry, found.ttl_s)
