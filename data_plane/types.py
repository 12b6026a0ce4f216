"""The value types every layer of the data plane shares: what a client asked for
(``ChatRequest``, ``EmbeddingsRequest``), one way to serve it (``Target`` with its ``Prices``
and the route's ``RouteOptions``), what came back (``ChatResult``, ``EmbeddingsResult``,
``Usage``) and the injected ``RandomSource``. Plain frozen data, no I/O: the pure core imports
these, and nothing here imports the rest of the data plane.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

# What the protobuf fields that carry money and token counts can hold: figures are saturated
# to these before they are sent or stored, never allowed to overflow.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Prices:
    """Micro-USD per million tokens, as in the model catalog."""

    input: int = 0
    output: int = 0
    cached_input: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    """One way to serve a route: a model of a provider, called with one credential."""

    kind: int  # shared.pb.snapshot_pb2.ProviderKind
    base_url: str
    options: Mapping[str, str]
    api_key: str
    provider_model: str
    model_id: str
    provider_id: str
    credential_id: str
    region: str
    prices: Prices
    priority: int = 0
    weight: int = 1
    enabled: bool = True

    def __repr__(self) -> str:  # never print the opened credential
        return f"Target(model_id={self.model_id!r}, provider_id={self.provider_id!r})"


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How a route calls its targets: timeouts (seconds), retries, latency-aware choice."""

    connect_timeout_s: float = 10.0
    first_token_timeout_s: float = 60.0
    total_timeout_s: float = 600.0
    max_retries: int = 0
    latency_aware: bool = False
    # Serve a feature the target's format cannot carry by dropping it (recorded in the audit
    # record) instead of refusing the request.
    drop_untranslatable: bool = False
    # Exact-match response cache: answers kept this many seconds (0: no caching).
    cache_ttl_s: int = 0


DEFAULT_ROUTE_OPTIONS = RouteOptions()


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Any) -> Usage:
        """Read an OpenAI ``usage`` object; anything malformed counts as zero."""
        if not isinstance(usage, dict):
            return cls()
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, dict) else 0
        return cls(
            _count(usage.get("prompt_tokens")),
            _count(usage.get("completion_tokens")),
            _count(cached),
        )

    def to_openai(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_prompt_tokens:
            body["prompt_tokens_details"] = {"cached_tokens": self.cached_prompt_tokens}
        return body


def _count(value: Any) -> int:
    """A token count as reported; saturated at what a usage event's field holds."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return 0
    return min(value, UINT32_MAX)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated client request. ``body`` is the client's JSON, untouched."""

    request_id: str
    body: Mapping[str, Any]
    stream: bool = False


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A validated ``/v1/embeddings`` request. ``body`` is the client's JSON, untouched."""

    request_id: str
    body: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A complete answer: an OpenAI ``chat.completion`` body and the usage it reported."""

    body: dict[str, Any]
    usage: Usage


@dataclass(frozen=True, slots=True)
class EmbeddingsResult:
    """An OpenAI embeddings ``list`` body (vectors as float lists, or base64 strings when the
    client asked for base64 and the provider produced them) and the usage it reported."""

    body: dict[str, Any]
    usage: Usage


class RandomSource(Protocol):
    def random(self) -> float:
        """A float in [0, 1)."""
        ...


# Client wire formats a request can be forwarded in, unchanged, to an upstream that speaks it.
ANTHROPIC_MESSAGES = "anthropic.messages"
OPENAI_CHAT = "openai.chat"
OPENAI_RESPONSES = "openai.responses"


class Untranslatable(Exception):
    """A request in one wire format uses a feature another format has no room for
    (``what`` names it: "extended thinking ('thinking')"); its target gets a 400."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


def drop_or_refuse(dropped: list[str] | None, what: str) -> None:
    """A feature a translation cannot carry: refused (``Untranslatable``) unless the route
    lets it be dropped (``dropped`` is then the list the drop is recorded in, once a name)."""
    if dropped is None:
        raise Untranslatable(what)
    if what not in dropped:
        dropped.append(what)


class Translate(Protocol):
    """``Native.translate``: the request as an OpenAI chat request, made at most once. With
    ``dropped`` (a list), a feature that cannot be carried is left out and named there
    instead of refused."""

    def __call__(self, dropped: list[str] | None = None) -> ChatRequest: ...


# Built for every request: not frozen (a frozen dataclass takes microseconds to build, its
# fields set one by one through object.__setattr__); nothing changes it after construction.
@dataclass(slots=True)
class Native:
    """A request in the client's own wire format (``wire``), for an upstream that speaks it.

    ``body`` is the client's JSON (redacted when an input guardrail redacted); ``raw`` its
    bytes while nothing changed them (None after a redaction), so they can be forwarded
    without re-encoding; ``model`` the name the client sent; ``headers`` the format's version
    and beta headers as the client sent them. ``translate`` gives the same request as an
    OpenAI chat request for an upstream that does not speak the wire, or raises
    ``Untranslatable``; ``dropped`` is None while the route refuses that, else the list that
    names what a translation left out (the request record's, for the audit record)."""

    wire: str
    request_id: str
    body: Mapping[str, Any]
    raw: bytes | None
    model: str
    stream: bool
    headers: Mapping[str, str]
    translate: Translate
    dropped: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Forwarded:
    """A complete answer in the request's own wire format: the upstream's bytes, parsed."""

    raw: bytes
    body: dict[str, Any]
    usage: Usage


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event of a stream in the request's own wire format: its ``event:``
    name (b"" when none), its data bytes as the upstream sent them (the model renamed to
    the one the client asked for), the data parsed (None for OpenAI's closing ``[DONE]``),
    the usage reported so far when this event reported some, and whether the next event is
    already at hand (read with this one: a relay may write the two at once)."""

    name: bytes
    data: bytes
    body: dict[str, Any] | None
    usage: Usage | None = None
    more: bool = False
