"""HTTP/1.1 for the upstream client (``client``), without I/O: the request's bytes, the
answer parsed as it arrives (head, body framed by ``Content-Length``, chunked, or up to the
connection's close), and gzip and deflate content codings undone.

Everything here is fed bytes as they arrive, however the network cut them, and gives the
same result for any cut (``tests/data_plane/test_http1.py``). What does not parse as an
HTTP/1.1 answer is a ``ProtocolError``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

MAX_HEAD = 2**16  # the status line and headers


class ProtocolError(Exception):
    """The upstream's answer is not HTTP/1.1 this client can read."""


def request_bytes(
    method: str, path: str, host: str, headers: Mapping[str, str], body: bytes | None
) -> bytes:
    """A request's head and body, for one write. A header that would split the head (a
    CR or LF in a name or value, from a credential or a forwarded client header) is a
    ``ValueError``: it is never sent."""
    lines = [f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(
                f"the header {name!r} cannot be sent (a line break, or a colon in its name)"
            )
        lines.append(f"{name}: {value}\r\n")
    lines.append("Accept-Encoding: gzip, deflate\r\n")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines).encode()
    return head + body if body else head


@dataclass(frozen=True, slots=True)
class Head:
    status: int
    headers: CIMultiDictProxy[str]
    keep_alive: bool


class ResponseParser:
    """An answer as its bytes arrive: the head (interim 1xx answers skipped), then the body's
    pieces, ``done`` at its end. The framing (status line, headers, Content-Length, chunked)
    is llhttp's, through ``httptools``: in C, where a Python chunk decoder cost 15 us a chunk
    and a stream is hundreds of chunks. A body with neither length nor chunking runs until
    the connection closes (``close``). ``extra``: bytes after the end, so the connection
    cannot carry another answer."""

    __slots__ = ("_fields", "_headers", "_parser", "_seen", "_until_close", "body", "done",
                 "extra", "head")  # fmt: skip

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers = CIMultiDict[str]()
        self._seen = 0  # bytes of the head so far
        self._until_close = False
        self.head: Head | None = None
        self.body: list[bytes] = []
        self.done = False
        self.extra = False

    def feed(self, data: bytes) -> None:
        """Parses ``data``; what it completes is in ``head``, ``body`` (taken by the reader)
        and ``done``. What is not HTTP/1.1 is a ``ProtocolError``."""
        if self.done:
            self.extra = self.extra or bool(data)
            return
        if self.head is None:
            self._seen += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as error:
            if not self.done:  # after the end: the next answer's bytes, never read
                raise ProtocolError(f"the answer is not HTTP/1.1 ({error})") from None
            self.extra = True
        if self.head is None and self._seen > MAX_HEAD:
            raise ProtocolError("the answer's head is too long")

    def close(self) -> None:
        """The connection ended: the end of a body that runs until then; a body that needed
        more was cut short."""
        if self.head is not None and self._until_close:
            self.done = True
        if not self.done:
            raise ProtocolError("the connection closed before the answer ended")

    # httptools' callbacks
    def on_message_begin(self) -> None:
        if self.done:
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("latin-1").strip(" \t"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        headers, self._headers = self._headers, CIMultiDict[str]()
        if status < 200:
            if status == 101:
                raise ProtocolError("the server switched protocols")
            return  # an interim answer: its message completes with no body
        self.head = Head(status, CIMultiDictProxy(headers), self._parser.should_keep_alive())
        self._until_close = (
            status not in (204, 304)
            and "Content-Length" not in headers
            and "Transfer-Encoding" not in headers
        )

    def on_body(self, data: bytes) -> None:
        self.body.append(data)

    def on_message_complete(self) -> None:
        if self.head is not None:
            self.done = True


class Decoder:
    """Undoes a ``Content-Encoding`` of gzip or deflate (zlib-wrapped or raw: servers send
    both, told apart by the zlib header's first two bytes); any other coding is a
    ``ProtocolError`` (none is asked for)."""

    __slots__ = ("_start", "_zlib")

    def __init__(self, coding: str) -> None:
        coding = coding.lower().strip()
        self._zlib: Any = None
        self._start = b""
        if coding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding != "deflate":
            raise ProtocolError(f"an unsupported content coding: {coding[:40]!r}")

    def feed(self, data: bytes) -> bytes:
        if self._zlib is None:  # deflate: wait for the two bytes that say which
            self._start += data
            if len(self._start) < 2:
                return b""
            first, second = self._start[0], self._start[1]
            wrapped = first & 0x0F == 8 and (first << 8 | second) % 31 == 0
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._start = self._start, b""
        try:
            return bytes(self._zlib.decompress(data))
        except zlib.error:
            raise ProtocolError("the answer's compressed body is corrupt") from None

    def end(self) -> bytes:
        if self._zlib is None:  # deflate that sent fewer than two bytes
            if self._start:
                raise ProtocolError("the answer's compressed body is corrupt")
            return b""
        return bytes(self._zlib.flush())


def decoder_for(head: Head) -> Decoder | None:
    coding = head.headers.get("Content-Encoding", "identity")
    return None if coding.lower().strip() in ("identity", "") else Decoder(coding)
