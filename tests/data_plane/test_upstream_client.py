"""The data plane's upstream HTTP/1.1 client against a real socket server that answers from a
script: connections kept and reused only when that is safe, timeouts, TLS, and an answer
that ends early or arrives in pieces."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import uvloop

from data_plane.upstream.client import Disconnected, Timeouts, UpstreamClient
from data_plane.upstream.http1 import ProtocolError
from shared.tls import issue, make_ca

FAST = Timeouts(connect=2.0, read=2.0)
Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, bytes], Awaitable[bool]]
Serve = Callable[..., Awaitable["Server"]]


class Server:
    """Accepts connections and answers each request with ``answer`` (which says whether the
    connection stays open); counts connections and keeps the requests' heads."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.heads.append(head)
                self.bodies.append(await reader.readexactly(length))
                if not await self.answer(reader, writer, head):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open.discard(writer)
            writer.close()

    def url(self, path: str = "/v1/chat/completions", scheme: str = "http") -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"{scheme}://127.0.0.1:{port}{path}"


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[Server] = []

    async def start(answer: Answer, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(answer)
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        for writer in list(server.open):
            writer.close()
        assert server.server is not None
        server.server.close()


def reply(body: bytes, *extra: bytes, status: bytes = b"200 OK") -> Answer:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        head = [b"HTTP/1.1 " + status, b"Content-Length: %d" % len(body), *extra]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        return b"Connection: close" not in extra

    return answer


async def post(client: UpstreamClient, url: str, timeouts: Timeouts = FAST) -> tuple[int, bytes]:
    async with client.post(url, data=b'{"a":1}', headers={"X-Key": "k"}, timeout=timeouts) as r:
        return r.status, await r.read()


async def test_a_connection_is_reused_for_answers_read_to_their_end(serve: Serve) -> None:
    server = await serve(reply(b'{"ok":true}'))
    async with UpstreamClient() as client:
        for _ in range(3):
            assert await post(client, server.url()) == (200, b'{"ok":true}')
    assert server.connections == 1
    assert server.bodies == [b'{"a":1}'] * 3
    assert b"X-Key: k\r\n" in server.heads[0]
    assert b"Host: 127.0.0.1:" in server.heads[0]


async def test_connection_close_an_unread_answer_and_an_error_end_the_connection(
    serve: Serve,
) -> None:
    closing = await serve(reply(b"bye", b"Connection: close"))
    kept = await serve(reply(b"x" * 1000))
    async with UpstreamClient() as client:
        assert await post(client, closing.url()) == (200, b"bye")
        assert await post(client, closing.url()) == (200, b"bye")
        assert closing.connections == 2
        async with client.post(kept.url(), data=b"", headers={}, timeout=FAST) as response:
            assert response.status == 200  # the body left unread
        with pytest.raises(RuntimeError):
            await read_then_fail(client, kept.url())
        assert await post(client, kept.url()) == (200, b"x" * 1000)
    assert kept.connections == 3


async def read_then_fail(client: UpstreamClient, url: str) -> None:
    async with client.post(url, data=b"", headers={}, timeout=FAST) as response:
        await response.read()
        raise RuntimeError("the caller failed")


async def test_an_idle_connection_the_server_closed_is_not_used_again(serve: Serve) -> None:
    server = await serve(reply(b"ok"))
    async with UpstreamClient() as client:
        assert await post(client, server.url()) == (200, b"ok")
        for writer in list(server.open):
            writer.close()
        await asyncio.sleep(0.1)
        assert await post(client, server.url()) == (200, b"ok")
    assert server.connections == 2


async def test_a_chunked_stream_arrives_as_it_is_sent(serve: Serve) -> None:
    go_on = asyncio.Event()

    async def stream(_: asyncio.StreamReader, writer: asyncio.StreamWriter, __: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        return True

    server = await serve(stream)
    async with UpstreamClient() as client:
        async with client.post(server.url(), data=b"", headers={}, timeout=FAST) as response:
            assert await response.readany() == b"first"
            go_on.set()
            assert await response.readany() == b"second"
            assert await response.readany() == b""
        assert await post(client, server.url()) == (200, b"firstsecond")
    assert server.connections == 1


async def test_silence_past_the_read_timeout_is_a_timeout_steady_bytes_are_not(
    serve: Serve,
) -> None:
    async def trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        pause = 0.05 if b"/steady" in head else 1.0
        for _ in range(8):
            await asyncio.sleep(pause)
            writer.write(b"1\r\n.\r\n")
        writer.write(b"0\r\n\r\n")
        return True

    server = await serve(trickle)
    timeouts = Timeouts(connect=2.0, read=0.3)
    async with UpstreamClient() as client:
        assert await post(client, server.url("/steady"), timeouts) == (200, b"." * 8)
        with pytest.raises(TimeoutError):
            await post(client, server.url("/stalls"), timeouts)


async def test_a_body_cut_short_or_garbage_is_an_error(serve: Serve) -> None:
    async def cut(_: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        if b"/garbage" in head:
            writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()
        return False

    server = await serve(cut)
    async with UpstreamClient() as client:
        with pytest.raises(Disconnected):
            await post(client, server.url("/cut"))
        with pytest.raises(ProtocolError):
            await post(client, server.url("/garbage"))


async def test_a_gzipped_answer_is_decoded(serve: Serve) -> None:
    server = await serve(reply(gzip.compress(b'{"big":"answer"}' * 50), b"Content-Encoding: gzip"))
    async with UpstreamClient() as client:
        assert await post(client, server.url()) == (200, b'{"big":"answer"}' * 50)
    assert b"Accept-Encoding: gzip, deflate" in server.heads[0]


async def test_a_refused_connection_is_a_connection_error() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    async with UpstreamClient() as client:
        with pytest.raises(ConnectionRefusedError):
            await post(client, f"http://127.0.0.1:{port}/v1")


async def test_a_cancelled_call_closes_its_connection(serve: Serve) -> None:
    async def slow(_: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> bool:
        if b"/slow" in head:
            await asyncio.sleep(0.5)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        return True

    server = await serve(slow)
    async with UpstreamClient() as client:
        task = asyncio.create_task(post(client, server.url("/slow")))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await post(client, server.url("/fast")) == (200, b"ok")
    assert server.connections == 2, "the late answer to the cancelled call is never read"


async def test_https_with_the_servers_certificate_checked(serve: Serve, tmp_path: Path) -> None:
    ca = make_ca("test CA")
    cert, key = issue(*ca, "upstream", server_names=["127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = await serve(reply(b"secure"), tls)
    trusting = ssl.create_default_context(cadata=ca[0].decode())
    async with UpstreamClient(ssl_context=trusting) as client:
        assert await post(client, server.url(scheme="https")) == (200, b"secure")
        assert await post(client, server.url(scheme="https")) == (200, b"secure")
    assert server.connections == 1
    async with UpstreamClient() as client:  # the system's CAs do not know this one
        with pytest.raises(ssl.SSLError):
            await post(client, server.url(scheme="https"))


def test_the_client_runs_on_uvloop_as_the_data_plane_does() -> None:
    """uvloop's transports are not asyncio's classes: the same exchange on its loop."""

    async def exchange() -> tuple[int, list[tuple[int, bytes]]]:
        server = Server(reply(b"on uvloop"))
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        async with UpstreamClient() as client:
            answers = [await post(client, server.url()) for _ in range(2)]
        server.server.close()
        return server.connections, answers

    assert uvloop.run(exchange()) == (1, [(200, b"on uvloop")] * 2)
