"""HTTP plumbing shared by the adapters: timeouts, error statuses, server-sent events, and
the mapping of the upstream client's failures to ``ProviderError``s.

Provider options read here: ``timeout_s`` (read timeout: the longest silence between two
reads, default 600) and ``connect_timeout_s`` (default 10; the route's connect timeout, when
given and shorter, wins).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson

from data_plane.types import Target
from data_plane.upstream.client import Response, Timeouts
from data_plane.upstream.http1 import ProtocolError
from data_plane.upstream.providers.base import ProviderError, status_error

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_RETRY_AFTER_S = 86_400.0  # and the longest timeout option


def option_seconds(options: Mapping[str, str], name: str, default: float) -> float:
    """A provider option in seconds; ``default`` unless a finite number from 0 to a day."""
    try:
        seconds = float(options.get(name, default))
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and 0 < seconds <= MAX_RETRY_AFTER_S else default


def client_timeout(target: Target, connect_timeout_s: float | None) -> Timeouts:
    connect = option_seconds(target.options, "connect_timeout_s", 10.0)
    if connect_timeout_s is not None:
        connect = min(connect, connect_timeout_s)
    return Timeouts(connect, option_seconds(target.options, "timeout_s", 600.0))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from ``Retry-After`` (or OpenAI's ``retry-after-ms``); HTTP dates are ignored,
    and so are values that are not a finite number of seconds from 0 to a day ("nan", "inf",
    "1e400", negative): they would end up in the breakers' and retries' arithmetic."""
    for name, scale in (("retry-after-ms", 1000.0), ("Retry-After", 1.0)):
        try:
            seconds = float(headers[name]) / scale
        except (KeyError, ValueError):
            continue
        return seconds if math.isfinite(seconds) and 0 <= seconds <= MAX_RETRY_AFTER_S else None
    return None


async def raise_for_status(response: Response) -> None:
    """A ProviderError for an error status, with the provider's message: OpenAI, Anthropic
    and Gemini all put it at ``error.message``. The message may reach the client (a 4xx the
    provider refused the request with), so the credential the request carried is taken out of
    it: providers quote a key they refuse, and a hostile one could quote any."""
    if response.status < 400:
        return
    text = await response.text(errors="replace")
    message = text[:500]
    try:
        parsed = orjson.loads(text)
        message = str(parsed["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        pass
    message = redact(message, sent_credentials(response.sent_headers, response.url))
    raise status_error(response.status, message, retry_after(response.headers))


# Where the adapters send a credential: headers (OpenAI, Azure, Anthropic, Gemini) or ``key=``.
CREDENTIAL_HEADERS = ("Authorization", "api-key", "x-api-key", "x-goog-api-key")
REDACTED = "[redacted]"


def sent_credentials(headers: Mapping[str, str], url: str) -> list[str]:
    found = [headers.get(name, "") for name in CREDENTIAL_HEADERS]
    found = [value.removeprefix("Bearer ").strip() for value in found]
    found += parse_qs(urlsplit(url).query).get("key", [])
    return [value for value in found if value]


def redact(message: str, secrets: list[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, REDACTED)
    return message


# What reading a provider's answer of an unexpected shape raises (a list where an object was
# expected, a missing key, a string where a number was): the provider's fault, not a crash.
MALFORMED = (AttributeError, TypeError, KeyError, IndexError, ValueError)


@contextmanager
def upstream_errors() -> Iterator[None]:
    """The client's failures as retryable ProviderErrors (connection, timeout, protocol), and an
    answer the adapter cannot read as a ``bad_response`` (502): wrap the call and the reading
    of its answer, never the building of the request (a bug there must stay a 500)."""
    try:
        yield
    except TimeoutError as exc:  # first: a TimeoutError is an OSError too
        raise ProviderError("timeout", retryable=True) from exc
    except OSError as exc:  # refused, reset, closed early (Disconnected), TLS, DNS
        raise ProviderError("connect_error", retryable=True, message=str(exc)) from exc
    except ProtocolError as exc:
        raise ProviderError("upstream_error", retryable=True, message=str(exc)) from exc
    except MALFORMED as exc:
        message = f"the provider's answer could not be read ({type(exc).__name__})"
        raise ProviderError("bad_response", status=502, retryable=True, message=message) from exc


def json_object(data: bytes) -> dict[str, Any]:
    """A JSON object from the provider, or a retryable ``bad_response``."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ProviderError("bad_response", status=502, retryable=True) from exc
    if not isinstance(parsed, dict):
        raise ProviderError("bad_response", status=502, retryable=True)
    return parsed


def truncated() -> ProviderError:
    return ProviderError(
        "stream_truncated", status=502, retryable=True, message="the stream ended early"
    )


# The longest line of a stream, as aiohttp's readline allowed (twice its 64 KiB buffer limit).
MAX_LINE = 2**17


class Readable(Protocol):
    """An answer's body as it arrives: ``readany`` gives what came since the last call,
    ``b""`` at the end (the client's ``Response``; aiohttp's ``StreamReader`` in tests)."""

    async def readany(self) -> bytes: ...


class SseLines:
    """Server-sent events from their lines, fed one at a time: multi-line data is joined
    with newlines, comments and ``id``/``retry`` fields are skipped."""

    __slots__ = ("data", "event")

    def __init__(self) -> None:
        self.event, self.data = b"", list[bytes]()

    def line(self, line: bytes) -> tuple[bytes, bytes] | None:
        """The (event name, data) this line (without its end) completes, if any."""
        if not line:
            done = self.end()
            self.event, self.data = b"", []
            return done
        if line.startswith(b"data:"):
            self.data.append(line[5:].lstrip(b" "))
        elif line.startswith(b"event:"):
            self.event = line[6:].strip()
        return None

    def end(self) -> tuple[bytes, bytes] | None:
        return (self.event, b"\n".join(self.data)) if self.data else None


async def sse_events(content: Readable) -> AsyncIterator[tuple[bytes, bytes]]:
    """(event name, data) of each server-sent event (``SseLines``), one at a time."""
    async for burst in sse_bursts(content):
        for event in burst:
            yield event


async def sse_bursts(content: Readable) -> AsyncIterator[list[tuple[bytes, bytes]]]:
    """The server-sent events each read completes (never an empty list), read as they
    arrive: every line a read brings is split in one go, not awaited line by line. Lines end
    at ``\n``, a trailing ``\r`` dropped, as aiohttp's readline split them."""
    events = SseLines()
    partial: list[bytes] = []  # the start of a line not yet ended
    size = 0
    while chunk := await content.readany():
        if b"\n" not in chunk:
            partial.append(chunk)
            size += len(chunk)
            if size > MAX_LINE:
                raise ValueError("Chunk too big")
            continue
        if partial:
            partial.append(chunk)
            chunk = b"".join(partial)
        lines = chunk.split(b"\n")
        tail = lines.pop()
        partial, size = ([tail], len(tail)) if tail else ([], 0)
        burst = []
        for raw in lines:
            done = events.line(raw.rstrip(b"\r"))
            if done is not None:
                burst.append(done)
        if burst:
            yield burst
    last = events.line(b"".join(partial).rstrip(b"\r")) if partial else None  # not ended
    done = last or events.end()
    if done is not None:
        yield [done]
