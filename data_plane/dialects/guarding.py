"""What a guardrail sees of a request and an answer in any dialect (pure).

Input: every string under the request's guarded fields (``Inbound.guarded``: messages or
input items, system or instructions, tool definitions) is text to scan: message contents and
text blocks, tool-call arguments (OpenAI's JSON text, Anthropic's ``input`` object), tool
results, documents with a text source, tool descriptions. Not scanned: identifiers and
structure (``STRUCTURAL`` keys), base64 data, and blocks a redaction would break
(``SEALED``: thinking blocks carry a signature over their text, reasoning items are
encrypted). A redaction rebuilds only the objects on the way to a changed string; an
unchanged body is the very same object, so its bytes are forwarded as they came.

Output: the text of an Anthropic ``message`` or a Responses ``response`` is redacted in place;
a blocked one is withheld, ending with ``stop_reason: "refusal"`` (Anthropic) or status
``incomplete`` for ``content_filter`` (Responses). Chat completions use
``guardrails.enforce.guard_completion``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from data_plane.guardrails import Action, CompiledGuardrails, Verdict, apply, combine
from data_plane.guardrails.engine import CLEAN

STRUCTURAL = frozenset(
    {
        "type", "role", "id", "tool_use_id", "tool_call_id", "call_id", "model", "name",
        "media_type", "signature", "cache_control", "url", "image_url", "file_id", "detail",
        "status", "encrypted_content", "citations", "format", "ttl", "index",
    }
)  # fmt: skip
SEALED = frozenset({"thinking", "redacted_thinking", "reasoning", "image", "input_image"})
_SAME = object()


def guard_body(
    compiled: CompiledGuardrails, body: Mapping[str, Any], fields: tuple[str, ...]
) -> tuple[Mapping[str, Any], Verdict]:
    """The body to forward (``body`` itself when nothing was redacted) and the verdict."""
    verdicts: list[Verdict] = []
    out: dict[str, Any] | None = None
    for name in fields:
        if name not in body:
            continue
        new = _walk(compiled, body[name], verdicts)
        if new is not _SAME:
            out = out if out is not None else dict(body)
            out[name] = new
    verdict = combine(verdicts) if verdicts else CLEAN
    return (body if out is None else out), verdict


def _walk(compiled: CompiledGuardrails, node: Any, verdicts: list[Verdict]) -> Any:
    """The node with its text guarded, or ``_SAME`` when nothing changed."""
    if isinstance(node, str):
        outcome = apply(compiled, node)
        if outcome.verdict is not CLEAN:
            verdicts.append(outcome.verdict)
        return outcome.text if outcome.changed else _SAME
    if isinstance(node, list):
        items: list[Any] | None = None
        for index, item in enumerate(node):
            new = _walk(compiled, item, verdicts)
            if new is not _SAME:
                items = items if items is not None else list(node)
                items[index] = new
        return _SAME if items is None else items
    if isinstance(node, dict):
        if node.get("type") in SEALED:
            return _SAME
        fields: dict[str, Any] | None = None
        for key, value in node.items():
            if _structural(node, key):
                continue
            new = _walk(compiled, value, verdicts)
            if new is not _SAME:
                fields = fields if fields is not None else dict(node)
                fields[key] = new
        return _SAME if fields is None else fields
    return _SAME


def _structural(node: Mapping[str, Any], key: str) -> bool:
    return key in STRUCTURAL or (key == "data" and node.get("type") != "text")


def texts(node: Any) -> Iterator[str]:
    """Every string a guardrail would scan in ``node`` (what a token estimate counts)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from texts(item)
    elif isinstance(node, dict) and node.get("type") not in SEALED:
        for key, value in node.items():
            if not _structural(node, key):
                yield from texts(value)


def estimate_tokens(
    body: Mapping[str, Any], fields: tuple[str, ...], count: Callable[[str], int] | None = None
) -> int:
    """An estimate of a request's input tokens: its texts counted by ``count`` (a tokenizer),
    or without one about four characters a token (OpenAI's rule of thumb), and a few tokens
    of framing per message."""
    found = (text for name in fields for text in texts(body.get(name)))
    tokens = sum(map(count, found)) if count else -(-sum(map(len, found)) // 4)
    messages = body.get("messages")
    framing = 3 * len(messages) if isinstance(messages, list) else 0
    return tokens + framing


def _guard_texts(
    compiled: CompiledGuardrails, parts: Iterator[dict[str, Any]]
) -> tuple[Verdict, bool]:
    """Redact (or empty, when blocked) each part's ``text`` in place: the verdict, and
    whether any text was withheld."""
    verdicts: list[Verdict] = []
    blocked = False
    for part in parts:
        text = part.get("text")
        if not isinstance(text, str) or not text:
            continue
        outcome = apply(compiled, text)
        if outcome.verdict is CLEAN:
            continue
        verdicts.append(outcome.verdict)
        if outcome.decision is Action.BLOCK:
            part["text"], blocked = "", True
        elif outcome.changed:
            part["text"] = outcome.text
    return (combine(verdicts) if verdicts else CLEAN), blocked


def guard_message(compiled: CompiledGuardrails, message: dict[str, Any]) -> Verdict:
    """An Anthropic ``message``'s text blocks, in place."""
    blocks = message.get("content")
    texts = (b for b in blocks or () if isinstance(b, dict) and b.get("type") == "text")
    verdict, blocked = _guard_texts(compiled, texts)
    if blocked:
        message["stop_reason"] = "refusal"
    return verdict


def output_texts(response: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The ``output_text`` parts of a Responses ``response``'s message items."""
    for item in response.get("output") or ():
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "output_text":
                    yield part


def withhold(response: dict[str, Any]) -> None:
    response["status"] = "incomplete"
    response["incomplete_details"] = {"reason": "content_filter"}


def guard_response(compiled: CompiledGuardrails, response: dict[str, Any]) -> Verdict:
    """A Responses ``response``'s output text, in place."""
    verdict, blocked = _guard_texts(compiled, output_texts(response))
    if blocked:
        withhold(response)
    return verdict


def changed(verdict: Verdict) -> bool:
    """Whether acting on ``verdict`` changed the text it was given."""
    return verdict.decision.rank >= Action.REDACT.rank
