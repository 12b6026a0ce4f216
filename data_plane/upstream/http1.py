"""HTTP/1.1 framing for the upstream client (``client``), without I/O: the request's bytes,
the response's head, and the decoding of its body (``Content-Length``, chunked, or up to
the connection's close; gzip and deflate content codings undone).

Everything here is fed bytes as they arrive, however the network cut them, and gives the
same result for any cut (``tests/data_plane/test_http1.py``). What does not parse as an
HTTP/1.1 answer is a ``ProtocolError``.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

MAX_HEAD = 2**16  # the status line and headers, as aiohttp's client allows (8190 a line)
MAX_CHUNK_LINE = 2**12  # a chunk's size line with its extensions; a trailer line
MAX_TRAILER = 2**16


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


def parse_head(raw: bytes) -> Head:
    """The status line and headers (``raw`` without the blank line that ends them)."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or rest[3:4] not in ("", " "):
        raise ProtocolError(f"not an HTTP/1.1 status line: {lines[0][:100]!r}")
    headers = CIMultiDict[str]()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip() or " " in name:
            raise ProtocolError(f"a malformed header line: {line[:100]!r}")
        headers.add(name, value.strip(" \t"))
    connection = headers.get("Connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    return Head(int(code), CIMultiDictProxy(headers), keep_alive)


class Body:
    """A body's framing: fed the bytes after the head, gives its content and says when it
    ended. ``done`` with bytes left over means the connection cannot be used again."""

    __slots__ = ("done", "extra")

    def __init__(self) -> None:
        self.done = False
        self.extra = False

    def feed(self, data: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """The connection ended: a body that needed more was cut short."""
        if not self.done:
            raise ProtocolError("the connection closed before the answer ended")


class Empty(Body):
    """No body (204, 304, a 1xx)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = True

    def feed(self, data: bytes) -> bytes:
        self.extra = self.extra or bool(data)
        return b""


class Sized(Body):
    __slots__ = ("left",)

    def __init__(self, length: int) -> None:
        super().__init__()
        self.left = length
        self.done = length == 0

    def feed(self, data: bytes) -> bytes:
        if len(data) < self.left:
            self.left -= len(data)
            return data
        taken, self.left, self.done = data[: self.left], 0, True
        self.extra = self.extra or len(data) > len(taken)
        return taken


class UntilClose(Body):
    """An HTTP/1.0 style body: everything until the server closes."""

    def feed(self, data: bytes) -> bytes:
        return data

    def close(self) -> None:
        self.done = True


_SIZE, _DATA, _DATA_END, _TRAILER = range(4)


class Chunked(Body):
    """``Transfer-Encoding: chunked``: size lines (extensions ignored), data, trailers
    (ignored)."""

    __slots__ = ("left", "line", "state", "trailer")

    def __init__(self) -> None:
        super().__init__()
        self.state, self.left, self.line, self.trailer = _SIZE, 0, b"", 0

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        at = 0
        end = len(data)
        while at < end and not self.done:
            if self.state == _DATA:
                taken = data[at : at + self.left]
                out.append(taken)
                at += len(taken)
                self.left -= len(taken)
                if not self.left:
                    self.state = _DATA_END
                continue
            line, at = self._line(data, at)
            if line is None:
                break
            if self.state == _SIZE:
                self._size(line)
            elif self.state == _DATA_END:
                if line:
                    raise ProtocolError("a chunk longer than its size line said")
                self.state = _SIZE
            elif line:  # a trailer field
                self.trailer += len(line)
                if self.trailer > MAX_TRAILER:
                    raise ProtocolError("the chunked body's trailer is too long")
            else:
                self.done = True
        self.extra = self.extra or (self.done and at < end)
        return b"".join(out) if len(out) != 1 else out[0]

    def _line(self, data: bytes, at: int) -> tuple[bytes | None, int]:
        """The next CRLF-ended line from ``at`` (with what an earlier read left), or None
        when this read does not end it."""
        found = data.find(b"\n", at)
        if found < 0:
            self.line += data[at:]
            if len(self.line) > MAX_CHUNK_LINE:
                raise ProtocolError("a chunk size line is too long")
            return None, len(data)
        line = self.line + data[at:found]
        self.line = b""
        if len(line) > MAX_CHUNK_LINE:
            raise ProtocolError("a chunk size line is too long")
        return line.removesuffix(b"\r"), found + 1

    def _size(self, line: bytes) -> None:
        digits = line.partition(b";")[0].strip(b" \t")
        if not digits or digits.strip(_HEX) or len(digits) > 16:
            raise ProtocolError(f"a malformed chunk size: {line[:40]!r}")
        self.left = int(digits, 16)
        self.state = _DATA if self.left else _TRAILER


_HEX = b"0123456789abcdefABCDEF"


def body_for(head: Head, method: str) -> Body:
    """The framing of the body that follows ``head`` (RFC 9112, section 6.3)."""
    if method == "HEAD" or head.status < 200 or head.status in (204, 304):
        return Empty()
    coding = head.headers.get("Transfer-Encoding")
    if coding is not None:
        if coding.lower().replace(" ", "").rpartition(",")[2] != "chunked":
            raise ProtocolError(f"an unsupported transfer coding: {coding[:40]!r}")
        return Chunked()
    lengths = head.headers.getall("Content-Length", [])
    if lengths:
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            raise ProtocolError(f"a malformed Content-Length: {lengths[:2]!r}")
        return Sized(int(lengths[0]))
    return UntilClose()


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
