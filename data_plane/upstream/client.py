"""The data plane's HTTP client for provider calls: HTTP/1.1 over kept-alive connections,
one write per request, answers parsed by ``http1`` (llhttp, through httptools).

It replaces aiohttp's client on the request path, where that client was the largest single
cost of a proxied request (a quarter of the data plane's CPU in a profile): a call through
it cost about five times a call through this one (``docs/performance.md``). It does only
what the adapters need: a POST or GET with a body already encoded, the answer's status and
headers, and its body read whole or as it arrives.

- **Connections** are kept per scheme, host and port, the most recently used first, and
  reused while idle for under ``IDLE_TIMEOUT_S``; an answer read to its end, with no
  ``Connection: close``, gives its connection back. Anything else (an error, an answer left
  unread, a cancellation) closes it.
- **Timeouts**: ``connect`` bounds the TCP connect and the TLS handshake; ``read`` the
  longest silence while waiting for the answer's bytes (aiohttp's ``sock_read``). There is
  no total timeout here: the failover layer holds the route's.
- **Failures** are what asyncio raises (``OSError`` for a refused, reset or TLS-failed
  connection, ``TimeoutError``), ``Disconnected`` (a ``ConnectionError``) when the server
  closes before the answer ends, and ``http1.ProtocolError`` for an answer that is not
  HTTP/1.1. ``upstream_errors`` maps them to ``ProviderError``s.
- **Back-pressure**: a stream's bytes not yet taken by the relay stop the socket's reading
  at ``HIGH_WATER`` bytes, as aiohttp's stream reader does.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from types import TracebackType
from typing import cast
from urllib.parse import quote, urlsplit

from multidict import CIMultiDictProxy

from data_plane.upstream.http1 import (
    Decoder,
    Head,
    ProtocolError,
    ResponseParser,
    decoder_for,
    request_bytes,
)

# Under the keep-alive of the servers providers run (uvicorn's, vLLM's: 5 s), so an idle
# connection is not reused just as its server closes it.
IDLE_TIMEOUT_S = 4.0
HIGH_WATER = 2**18


class Disconnected(ConnectionError):
    """The server closed the connection before its answer ended."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float
    read: float


@dataclass(frozen=True, slots=True)
class Origin:
    tls: bool
    host: str
    port: int
    authority: str  # the Host header

    @property
    def key(self) -> tuple[bool, str, int]:
        return self.tls, self.host, self.port


# The path keeps what is already percent-encoded and every reserved character; anything
# else (a space, non-ASCII) is encoded, as aiohttp's URL handling did.
_PATH_SAFE = "/:@!$&'()*+,;=?%-._~[]"


@lru_cache(maxsize=4096)
def split_url(url: str) -> tuple[Origin, str]:
    """The origin and the request target of an http or https URL (``ValueError`` for any
    other). Cached: the adapters build the same few URLs over and over."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http or https URL: {url[:100]!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE)
    return Origin(tls, parts.hostname, port, parts.netloc.rpartition("@")[2]), path


class _Connection(asyncio.Protocol):
    """One connection, one exchange at a time: fed the answer's bytes by the loop, read by
    the ``Response`` that holds it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[bool, str, int]) -> None:
        self.loop = loop
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._begin(0.0)
        self.active = False

    def _begin(self, read_timeout: float) -> None:
        self.active = True
        self.read_timeout = read_timeout
        self.parser = ResponseParser()
        self.decoder: Decoder | None = None
        self.chunks: list[bytes] = []  # the body's bytes the reader has not taken
        self.buffered = 0
        self.paused = False
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.since = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.active or self.error is not None:
            return
        try:
            self.parser.close()
            if self.decoder is not None:
                self._take([self.decoder.end()])
        except ProtocolError as error:
            self.error = Disconnected(str(error))
        except Exception as error:  # handed to the reader, raised there
            self.error = error
        self._wake()

    def data_received(self, data: bytes) -> None:
        if not self.active or self.error is not None:  # bytes nobody asked for
            self._fail(ProtocolError("the server sent bytes outside an answer"))
            return
        self.since = self.loop.time()
        parser = self.parser
        had_head = parser.head is not None
        try:
            parser.feed(data)
            if parser.head is None:
                return
            if not had_head:
                self.decoder = decoder_for(parser.head)
            pieces = parser.body
            if self.decoder is not None:
                pieces = [self.decoder.feed(piece) for piece in pieces]
                if parser.done:
                    pieces.append(self.decoder.end())
                parser.body.clear()
            self._take(pieces)
        except Exception as error:  # a ProtocolError (or a bug): raised to the reader
            self._fail(error)
            return
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # close: connection_lost says whether the answer was whole

    def _take(self, pieces: list[bytes]) -> None:
        if not pieces:
            return
        self.chunks += pieces
        self.buffered += sum(map(len, pieces))
        pieces.clear()
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # The exchange, from the Response's side.
    def send(self, payload: bytes, read_timeout: float) -> None:
        self._begin(read_timeout)
        assert self.transport is not None
        self.transport.write(payload)
        self.since = self.loop.time()
        self.timer = self.loop.call_at(self.since + read_timeout, self._on_timer)

    def _on_timer(self) -> None:
        """The read timeout: fires only while a reader waits, ``read_timeout`` after the
        last byte or the start of the wait; re-armed otherwise (one timer per exchange,
        not one per read)."""
        self.timer = None
        if not self.active or self.error is not None:
            return
        now = self.loop.time()
        due = self.since + self.read_timeout
        if self.waiter is not None and now >= due:
            self._fail(TimeoutError(f"no answer from the server for {self.read_timeout:g} s"))
            return
        self.timer = self.loop.call_at(
            due if self.waiter is not None else now + 1.0, self._on_timer
        )

    async def _wait(self) -> None:
        if self.error is not None:
            raise self.error
        self.waiter = self.loop.create_future()
        self.since = self.loop.time()  # silence counts from the last byte or this wait
        try:
            await self.waiter
        finally:
            self.waiter = None

    async def response_head(self) -> Head:
        while self.parser.head is None:
            await self._wait()
        return self.parser.head

    async def readany(self) -> bytes:
        """The answer's bytes that arrived since the last call, waiting for some; ``b""``
        at its end."""
        while not self.chunks:
            if self.error is not None:
                raise self.error
            if self.parser.done:
                return b""
            await self._wait()
        chunks = self.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    def finish(self) -> bool:
        """Ends the exchange; whether the connection can carry another."""
        self.active = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        parser, head = self.parser, self.parser.head
        return (
            self.error is None
            and head is not None
            and head.keep_alive
            and parser.done
            and not parser.extra
            and not self.chunks
            and not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class Response:
    """An answer: status and headers at once, the body read whole (``read``) or as it
    arrives (``readany``). ``url`` and ``sent_headers`` are the request's (to take a
    credential it carried out of an error message)."""

    __slots__ = ("_connection", "headers", "readany", "sent_headers", "status", "url")

    def __init__(
        self, connection: _Connection, head: Head, url: str, sent_headers: Mapping[str, str]
    ) -> None:
        self._connection = connection
        self.status = head.status
        self.headers: CIMultiDictProxy[str] = head.headers
        self.url = url
        self.sent_headers = sent_headers
        self.readany = connection.readany

    async def read(self) -> bytes:
        parts = []
        while data := await self._connection.readany():
            parts.append(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def text(self, errors: str = "strict") -> str:
        charset = "utf-8"
        for param in self.headers.get("Content-Type", "").split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset" and value:
                charset = value.strip('"')
        data = await self.read()
        try:
            return data.decode(charset, errors)
        except LookupError:
            return data.decode("utf-8", errors)


class Exchange:
    """``async with client.post(...) as response``: the request sent and the answer's
    head read on entry; on exit the connection goes back to the pool if the answer was
    read to its end, else it is closed."""

    __slots__ = ("_client", "_connection", "_data", "_headers", "_method", "_timeouts", "_url")

    def __init__(
        self,
        client: UpstreamClient,
        method: str,
        url: str,
        data: bytes | None,
        headers: Mapping[str, str],
        timeouts: Timeouts,
    ) -> None:
        self._client, self._method, self._url = client, method, url
        self._data, self._headers, self._timeouts = data, headers, timeouts
        self._connection: _Connection | None = None

    async def __aenter__(self) -> Response:
        origin, path = split_url(self._url)
        payload = request_bytes(self._method, path, origin.authority, self._headers, self._data)
        self._connection = connection = await self._client.connection(
            origin, self._timeouts.connect
        )
        try:
            connection.send(payload, self._timeouts.read)
            head = await connection.response_head()
        except BaseException:
            connection.finish()
            connection.abort()
            raise
        return Response(connection, head, self._url, self._headers)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection.finish() and kind is None:
            self._client.release(connection)
        else:
            connection.abort()


class UpstreamClient:
    """Kept-alive connections to the providers, per origin."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._closed = False

    def post(
        self, url: str, *, data: bytes, headers: Mapping[str, str], timeout: Timeouts
    ) -> Exchange:
        return Exchange(self, "POST", url, data, headers, timeout)

    def get(self, url: str, *, headers: Mapping[str, str], timeout: Timeouts) -> Exchange:
        return Exchange(self, "GET", url, None, headers, timeout)

    async def connection(self, origin: Origin, connect_timeout: float) -> _Connection:
        """An idle connection to ``origin``, else a new one."""
        loop = asyncio.get_running_loop()
        idle = self._idle.get(origin.key)
        if idle:
            now = loop.time()
            while idle:
                connection = idle.pop()
                if not connection.closed and now - connection.idle_since < IDLE_TIMEOUT_S:
                    return connection
                connection.abort()
        context = None
        if origin.tls:
            context = self._ssl = self._ssl or ssl.create_default_context()
        async with asyncio.timeout(connect_timeout):
            _, connection = await loop.create_connection(
                lambda: _Connection(loop, origin.key),
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context is not None else None,
            )
        return connection

    def release(self, connection: _Connection) -> None:
        if self._closed:
            connection.abort()
            return
        now = connection.loop.time()
        connection.idle_since = now
        idle = self._idle.setdefault(connection.key, [])
        idle.append(connection)
        # The least recently used sit first: drop those closed or too long idle.
        while idle and (idle[0].closed or now - idle[0].idle_since >= IDLE_TIMEOUT_S):
            idle.pop(0).abort()

    async def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()

    async def __aenter__(self) -> UpstreamClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
