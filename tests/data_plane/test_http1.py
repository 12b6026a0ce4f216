"""The upstream client's HTTP/1.1 framing (``data_plane.upstream.http1``): the same body for
any way the network cuts the bytes, and a ``ProtocolError`` for what is not HTTP/1.1."""

from __future__ import annotations

import gzip
import itertools
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_plane.upstream.http1 import (
    Body,
    Chunked,
    Decoder,
    ProtocolError,
    Sized,
    UntilClose,
    body_for,
    decoder_for,
    parse_head,
    request_bytes,
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in pieces at ``points`` (positions, any order, repeats allowed)."""
    edges = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def fed(body: Body, pieces: list[bytes]) -> bytes:
    return b"".join(body.feed(piece) for piece in pieces)


def chunked(parts: list[bytes], *, extension: bool = False, trailer: bool = False) -> bytes:
    out = b""
    for part in parts:
        size = f"{len(part):x}".encode() + (b";name=value" if extension else b"")
        out += size + b"\r\n" + part + b"\r\n"
    return out + b"0\r\n" + (b"Expires: never\r\n" if trailer else b"") + b"\r\n"


@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    st.lists(st.integers(min_value=0), max_size=12),
    st.booleans(),
    st.booleans(),
)
def test_a_chunked_body_is_the_same_however_it_is_cut(
    parts: list[bytes], points: list[int], extension: bool, trailer: bool
) -> None:
    wire = chunked(parts, extension=extension, trailer=trailer)
    body = Chunked()
    assert fed(body, cut(wire, points)) == b"".join(parts)
    assert body.done
    assert not body.extra


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=8))
def test_a_sized_body_ends_at_its_length(data: bytes, points: list[int]) -> None:
    body = Sized(len(data))
    assert fed(body, cut(data, points)) == data
    assert body.done
    assert not body.extra


def test_bytes_after_a_body_end_mean_the_connection_is_not_reused() -> None:
    sized = Sized(3)
    assert sized.feed(b"abcdef") == b"abc"
    assert sized.done
    assert sized.extra
    chunks = Chunked()
    assert chunks.feed(chunked([b"hi"]) + b"HTTP/1.1 200 OK") == b"hi"
    assert chunks.done
    assert chunks.extra


@pytest.mark.parametrize(
    "wire",
    [b"zz\r\n", b"-1\r\n", b"0x1\r\n", b"1_0\r\n", b"\r\n", b"2\r\nabc\r\n", b"1" * 5000],
)
def test_a_malformed_chunk_is_a_protocol_error(wire: bytes) -> None:
    with pytest.raises(ProtocolError):
        Chunked().feed(wire)


def test_a_body_cut_short_is_a_protocol_error_and_until_close_ends_at_close() -> None:
    for body in (Sized(10), Chunked()):
        body.feed(b"5\r\nab" if isinstance(body, Chunked) else b"ab")
        with pytest.raises(ProtocolError):
            body.close()
    until = UntilClose()
    assert until.feed(b"all of it") == b"all of it"
    until.close()
    assert until.done


def test_a_head_is_parsed_with_case_insensitive_headers() -> None:
    head = parse_head(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nset-cookie: a\r\nSet-Cookie: b"
    )
    assert head.status == 429
    assert head.keep_alive
    assert head.headers["retry-after"] == "2"
    assert head.headers.getall("SET-COOKIE") == ["a", "b"]
    assert not parse_head(b"HTTP/1.1 200 OK\r\nConnection: close").keep_alive
    assert not parse_head(b"HTTP/1.0 200 OK").keep_alive
    assert parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive").keep_alive
    assert parse_head(b"HTTP/1.1 204").status == 204


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.6",
        b"HTTP/2 200",
        b"HTTP/1.1 2000 OK",
        b"HTTP/1.1 abc OK",
        b"HTTP/1.1 200 OK\r\nno colon here",
        b"HTTP/1.1 200 OK\r\n: empty name",
        b"HTTP/1.1 200 OK\r\nBad Name: x",
        b"HTTP/1.1 200 OK\r\n Folded: x",
    ],
)
def test_what_is_not_an_http_head_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_head(raw)


def test_the_framing_follows_the_head() -> None:
    def framing(raw: bytes, method: str = "POST") -> type[Body]:
        return type(body_for(parse_head(raw), method))

    assert framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked") is Chunked
    assert framing(b"HTTP/1.1 200 OK\r\nContent-Length: 12") is Sized
    assert framing(b"HTTP/1.1 200 OK") is UntilClose
    assert body_for(parse_head(b"HTTP/1.1 204 No Content"), "POST").done
    assert body_for(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5"), "HEAD").done
    for bad in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip",
    ):
        with pytest.raises(ProtocolError):
            body_for(parse_head(bad), "POST")


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=8))
def test_gzip_and_both_deflates_are_undone_however_they_are_cut(
    data: bytes, points: list[int]
) -> None:
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for coding, wire in (
        ("gzip", gzip.compress(data)),
        ("deflate", zlib.compress(data)),
        ("deflate", raw_deflate.compress(data) + raw_deflate.flush()),
    ):
        decoder = Decoder(coding)
        out = b"".join(decoder.feed(piece) for piece in cut(wire, points)) + decoder.end()
        assert out == data


def test_an_unasked_coding_and_a_corrupt_body_are_protocol_errors() -> None:
    assert decoder_for(parse_head(b"HTTP/1.1 200 OK")) is None
    with pytest.raises(ProtocolError):
        decoder_for(parse_head(b"HTTP/1.1 200 OK\r\nContent-Encoding: br"))
    with pytest.raises(ProtocolError):
        Decoder("gzip").feed(b"this is not gzip at all")


def test_a_request_is_one_buffer_and_a_line_break_in_a_header_is_refused() -> None:
    wire = request_bytes("POST", "/v1/x", "api.example:8443", {"Authorization": "Bearer k"}, b"{}")
    assert wire == (
        b"POST /v1/x HTTP/1.1\r\nHost: api.example:8443\r\nAuthorization: Bearer k\r\n"
        b"Accept-Encoding: gzip, deflate\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert b"Content-Length" not in request_bytes("GET", "/", "h", {}, None)
    for headers in ({"x-api-key": "k\r\nX-Evil: 1"}, {"X-Evil\n": "v"}, {"a:b": "v"}):
        with pytest.raises(ValueError, match="cannot be sent"):
            request_bytes("POST", "/", "h", headers, b"")
