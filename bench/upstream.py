"""A fixed, fast fake OpenAI-compatible upstream: every POST gets the same small
``chat.completion`` JSON, or, when the request asks for a stream, the same 256-token answer as
``chat.completion.chunk`` server-sent events, one token a chunk (then the finish reason, the
usage and ``[DONE]``), each event its own HTTP chunk; ``POST /v1/messages`` gets the same
answer as an Anthropic ``message`` and ``POST /v1/responses`` as a Responses API ``response``
(for the native pass-through rows); ``GET /health`` and ``GET /v1/models`` answer too.

A raw asyncio protocol on uvloop (HTTP/1.1 keep-alive, Content-Length or chunked request
bodies, pipelining) rather than a framework, so the upstream costs as little CPU as possible
and every gateway in the comparison is measured against the same cheap answer.
Run as ``python -m bench.upstream --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import orjson
import uvloop

MODEL = "bench-model"
COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)
REPLY = "Hello! How can I help you today?"
MESSAGE = orjson.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": REPLY}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 9},
    }
)
RESPONSE = orjson.dumps(
    {
        "id": "resp_bench",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "model": MODEL,
        "output": [
            {
                "type": "message",
                "id": "msg_bench",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": REPLY, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 9,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 21,
        },
    }
)
MODELS = orjson.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
STREAM_TOKENS = 256


def _event(delta: dict[str, object], finish: str | None = None, **extra: object) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _stream_events() -> list[bytes]:
    words = [f" word{i % 50}" for i in range(STREAM_TOKENS)]
    events = [_event({"role": "assistant", "content": ""})]
    events += [_event({"content": word}) for word in words]
    events.append(_event({}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": STREAM_TOKENS, "total_tokens": 268}
    events.append(
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": MODEL,
                "choices": [],
                "usage": usage,
            }
        )
        + b"\n\n"
    )
    events.append(b"data: [DONE]\n\n")
    return events


def _response(body: bytes, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


COMPLETION_RESPONSE = _response(COMPLETION)
MESSAGE_RESPONSE = _response(MESSAGE)
RESPONSE_RESPONSE = _response(RESPONSE)
STREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in _stream_events())
    + b"0\r\n\r\n"
)
MODELS_RESPONSE = _response(MODELS)
HEALTH_RESPONSE = _response(b'{"status":"ok"}')
BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Incomplete(Exception):
    """More bytes are needed before the next request can be parsed."""


def _chunked_length(buffer: bytearray, start: int) -> int:
    """The offset just past a chunked body starting at ``start``."""
    pos = start
    while True:
        eol = buffer.find(b"\r\n", pos)
        if eol < 0:
            raise _Incomplete
        size = int(bytes(buffer[pos:eol]).split(b";")[0], 16)
        pos = eol + 2 + size + 2
        if pos > len(buffer):
            raise _Incomplete
        if size == 0:
            return pos


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        out: list[bytes] = []
        close = False
        while not close:
            try:
                reply, close = self._next()
            except _Incomplete:
                break
            except ValueError:
                reply, close = BAD_REQUEST, True
            out.append(reply)
        if self._transport is not None and out:
            self._transport.write(b"".join(out))
            if close:
                self._transport.close()

    def _next(self) -> tuple[bytes, bool]:
        """The answer to the next complete request in the buffer (consumed) and whether to
        close the connection after it."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            raise _Incomplete
        head = bytes(buffer[:end]).lower()
        line, _, rest = head.partition(b"\r\n")
        length = 0
        chunked = close = False
        for header in rest.split(b"\r\n"):
            name, _, value = header.partition(b":")
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value:
                chunked = True
            elif name == b"connection" and b"close" in value:
                close = True
        body_end = _chunked_length(buffer, end + 4) if chunked else end + 4 + length
        if body_end > len(buffer):
            raise _Incomplete
        body = bytes(buffer[end + 4 : body_end])
        del buffer[:body_end]
        method, _, target = line.partition(b" ")
        if method == b"post" and target.startswith(b"/v1/messages"):
            return MESSAGE_RESPONSE, close
        if method == b"post" and target.startswith(b"/v1/responses"):
            return RESPONSE_RESPONSE, close
        if method == b"post":
            streamed = b'"stream":true' in body.replace(b" ", b"")
            return (STREAM_RESPONSE if streamed else COMPLETION_RESPONSE), close
        if target.startswith(b"/v1/models"):
            return MODELS_RESPONSE, close
        return HEALTH_RESPONSE, close


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
