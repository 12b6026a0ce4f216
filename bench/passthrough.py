"""The ceiling: a bare aiohttp + uvloop pass-through with no policy at all.

It reads the client's body, POSTs it unchanged to the upstream over one pooled client session
and returns the upstream's bytes (a stream relayed as its bytes arrive). Whatever ASC's data
plane costs beyond this is the price of its policy (authentication, limits, guardrails,
routing, usage reporting).
Run as ``python -m bench.passthrough --port N --upstream http://127.0.0.1:M/v1``.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
_HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer x"}


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    url = request.app[UPSTREAM] + "/chat/completions"
    async with request.app[SESSION].post(url, data=body, headers=_HEADERS) as upstream:
        if upstream.content_type == "text/event-stream":
            return await _relay(request, upstream)
        payload = await upstream.read()
        status = upstream.status
    return web.Response(body=payload, status=status, content_type="application/json")


async def _relay(request: web.Request, upstream: aiohttp.ClientResponse) -> web.StreamResponse:
    """A stream passed on as its bytes arrive, without looking inside."""
    response = web.StreamResponse(
        status=upstream.status,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
    )
    await response.prepare(request)
    async for data in upstream.content.iter_any():
        await response.write(data)
    await response.write_eof()
    return response


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _session(app: web.Application) -> AsyncIterator[None]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        app[SESSION] = session
        yield


def create_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/health", health)
    app.cleanup_ctx.append(_session)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:9/v1")
    args = parser.parse_args()
    web.run_app(
        create_app(args.upstream),
        host=args.host,
        port=args.port,
        access_log=None,
        loop=uvloop.new_event_loop(),
        print=None,
    )


if __name__ == "__main__":
    main()
