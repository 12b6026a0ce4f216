"""The upstream client's HTTP/1.1 parsing (``data_plane.upstream.http1``): the same answer for
any way the network cuts the bytes, and a ``ProtocolError`` for what is not HTTP/1.1."""

from __future__ import annotations

import gzip
import itertools
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from data_plane.upstream.http1 import (
    Decoder,
    Head,
    ProtocolError,
    ResponseParser,
    decoder_for,
    request_bytes,
)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` in pieces at ``points`` (positions, any order, repeats allowed)."""
    edges = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def parsed(pieces: list[bytes]) -> ResponseParser:
    parser = ResponseParser()
    for piece in pieces:
        parser.feed(piece)
    return parser


def chunked(parts: list[bytes], *, extension: bool = False, trailer: bool = False) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
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
    parser = parsed(cut(chunked(parts, extension=extension, trailer=trailer), points))
    assert b"".join(parser.body) == b"".join(parts)
    assert parser.done
    assert not parser.extra


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0), max_size=8))
def test_a_sized_body_ends_at_its_length(data: bytes, points: list[int]) -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data
    parser = parsed(cut(wire, points))
    assert b"".join(parser.body) == data
    assert parser.done
    assert not parser.extra


def test_bytes_after_an_answer_mean_the_connection_is_not_reused() -> None:
    for after in (b"HTTP/1.1 200 OK\r\n", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"):
        sized = parsed([b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc" + after])
        assert b"".join(sized.body) == b"abc"
        assert sized.done
        assert sized.extra
        chunks = parsed([chunked([b"hi"]), after])
        assert b"".join(chunks.body) == b"hi"
        assert chunks.extra


@pytest.mark.parametrize("size_line", [b"zz", b"-1", b"0x1", b"1_0", b"", b"2\r\nabc"])
def test_a_malformed_chunk_is_a_protocol_error(size_line: bytes) -> None:
    with pytest.raises(ProtocolError):
        parsed([chunked([])[: -len(b"0\r\n\r\n")] + size_line + b"\r\n"])


def test_a_body_cut_short_is_an_error_one_without_length_ends_at_close() -> None:
    for wire in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ):
        parser = parsed([wire])
        assert not parser.done
        with pytest.raises(ProtocolError):
            parser.close()
    until = parsed([b"HTTP/1.0 200 OK\r\n\r\nall ", b"of it"])
    assert not until.done
    until.close()
    assert until.done
    assert b"".join(until.body) == b"all of it"


def test_a_head_is_parsed_with_case_insensitive_headers_interim_answers_skipped() -> None:
    parser = parsed(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nset-cookie: a\r\n",
            b"Set-Cookie: b\r\nContent-Length: 0\r\n\r\n",
        ]
    )
    assert parser.head is not None
    assert parser.head.status == 429
    assert parser.head.keep_alive
    assert parser.head.headers["retry-after"] == "2"
    assert parser.head.headers.getall("SET-COOKIE") == ["a", "b"]
    assert "Link" not in parser.head.headers
    assert parser.done

    def head(raw: bytes) -> Head:
        answer = parsed([raw + b"\r\nContent-Length: 0\r\n\r\n"]).head
        assert answer is not None
        return answer

    assert not head(b"HTTP/1.1 200 OK\r\nConnection: close").keep_alive
    assert not head(b"HTTP/1.0 200 OK").keep_alive
    assert head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive").keep_alive
    no_content = parsed([b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert no_content.done
    assert no_content.body == []


@pytest.mark.parametrize(
    "raw",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70_000,
    ],
)
def test_what_is_not_an_http_answer_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        parsed([raw])


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
    def head(extra: bytes) -> Head:
        answer = parsed([b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: 0\r\n\r\n"]).head
        assert answer is not None
        return answer

    assert decoder_for(head(b"")) is None
    assert decoder_for(head(b"Content-Encoding: identity\r\n")) is None
    with pytest.raises(ProtocolError):
        decoder_for(head(b"Content-Encoding: br\r\n"))
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
