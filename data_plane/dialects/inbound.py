"""A client request as the pipeline sees it, whatever the dialect (pure): the request to
forward as it is (``types.Native``) and the small policy view the gateway decides on: the
figures admission sizes it by, the person it names, the fields a guardrail reads.

Each dialect parses its body once into an ``Inbound``; the OpenAI chat shape every other
provider takes is derived from it only when a target needs it (``Native.translate``), and at
most once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from data_plane.dialects import numbers
from data_plane.errors import ApiError
from data_plane.types import ChatRequest, Native, Translate

# (request id, body, dropped): see ``types.Translate``.
ToChat = Callable[[str, Mapping[str, Any], list[str] | None], ChatRequest]
END_USER_MAX = 200


@dataclass(slots=True)  # built per request: not frozen (cheaper); never changed once built
class Inbound:
    native: Native
    # What limits size the request by, in OpenAI's names (max_tokens, n).
    admission: Mapping[str, Any]
    # The person behind the request as the body names them ("" when it does not).
    end_user: str
    # The top-level fields holding text a guardrail must see.
    guarded: tuple[str, ...]
    to_chat: ToChat
    # The client asked for an estimate of its input tokens where the answer must otherwise
    # say 0 until the upstream reports them (a translated Anthropic stream's message_start).
    estimate_input: bool = False

    @property
    def body(self) -> Mapping[str, Any]:
        return self.native.body

    @property
    def stream(self) -> bool:
        return self.native.stream


def inbound(
    wire: str,
    request_id: str,
    body: Mapping[str, Any],
    raw: bytes | None,
    *,
    headers: Mapping[str, str],
    admission: Mapping[str, Any],
    end_user: Any,
    guarded: tuple[str, ...],
    to_chat: ToChat,
    estimate_input: bool = False,
) -> Inbound:
    native = Native(
        wire=wire,
        request_id=request_id,
        body=body,
        raw=raw,
        model=str(body["model"]),
        stream=body.get("stream") is True,
        headers=headers,
        translate=_once(to_chat, request_id, body),
    )
    user = end_user.strip()[:END_USER_MAX] if isinstance(end_user, str) else ""
    return Inbound(native, admission, user, guarded, to_chat, estimate_input)


def with_body(request: Inbound, body: Mapping[str, Any]) -> Inbound:
    """``request`` with a changed body (a redaction): its bytes are no longer the client's."""
    native = replace(
        request.native,
        body=body,
        raw=None,
        translate=_once(request.to_chat, request.native.request_id, body),
    )
    return replace(request, native=native)


def _once(to_chat: ToChat, request_id: str, body: Mapping[str, Any]) -> Translate:
    done: list[ChatRequest] = []

    def translate(dropped: list[str] | None = None) -> ChatRequest:
        if not done:
            done.append(to_chat(request_id, body, dropped))
        return done[0]

    return translate


def normalise(body: dict[str, Any], bounds: Mapping[str, numbers.Bound]) -> ApiError | bool:
    """``numbers.normalise`` on ``body``: the refusal, or whether it rewrote a value (an
    integral float as an integer), when the client's bytes can no longer be forwarded."""
    floats = [name for name in bounds.keys() & body.keys() if type(body[name]) is float]
    refused = numbers.normalise(body, bounds)
    if refused is not None:
        return refused
    return any(type(body[name]) is not float for name in floats)


def pick_headers(headers: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The named headers the client sent (version and beta headers passed on upstream)."""
    return {name: headers[name] for name in names if headers.get(name)}
