"""Numeric request parameters, bounded and normalised at the edge (pure).

Every number a client sends that the gateway meters, caps or forwards is checked here before
anything else sees it: token counts, ``n``, sampling parameters, embedding dimensions. An
integer parameter may come as a JSON integer or as an integral float (``1e5``, ``100000.0``);
it is rewritten as the canonical integer, so the key's caps, the budget reservation and the
upstream all see the same value (an upstream that coerces ``"100000"`` or ``1e5`` itself
would otherwise generate past a cap the gateway never recognised). A string, a boolean, a
fraction or a value out of range is a 400 naming the parameter.

The ranges are wide (what any provider accepts) but finite, so the arithmetic on them (the
worst-case cost of a request, the lease amounts derived from it) stays far inside int64.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from data_plane import errors
from data_plane.errors import ApiError
from data_plane.types import INT64_MAX, INT64_MIN

# No model generates more tokens in one answer; the bound keeps reservations finite.
MAX_OUTPUT_TOKENS = 1_000_000
MAX_CHOICES = 128


@dataclass(frozen=True, slots=True)
class Bound:
    low: float
    high: float
    integer: bool = False


_TOKENS = Bound(1, MAX_OUTPUT_TOKENS, integer=True)

# OpenAI chat parameters (Anthropic's are translated into these names first).
CHAT: Mapping[str, Bound] = {
    "max_tokens": _TOKENS,
    "max_completion_tokens": _TOKENS,
    "n": Bound(1, MAX_CHOICES, integer=True),
    "top_logprobs": Bound(0, 20, integer=True),
    "seed": Bound(INT64_MIN, INT64_MAX, integer=True),
    "top_k": Bound(0, 1_000_000, integer=True),
    "temperature": Bound(0, 2),
    "top_p": Bound(0, 1),
    "presence_penalty": Bound(-2, 2),
    "frequency_penalty": Bound(-2, 2),
}
EMBEDDINGS: Mapping[str, Bound] = {"dimensions": Bound(1, 65_536, integer=True)}


def canonical_int(value: Any) -> int | None:
    """``value`` as an integer when it is one (a JSON integer or an integral float), else
    None. Booleans are not integers here, whatever Python thinks."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def normalise(body: dict[str, Any], bounds: Mapping[str, Bound]) -> ApiError | None:
    """Check every bounded parameter present in ``body`` (null means "not set") and rewrite
    integer ones in canonical form, in place."""
    for name, bound in bounds.items():
        value = body.get(name)
        if value is None:
            continue
        checked = _check(name, value, bound)
        if isinstance(checked, ApiError):
            return checked
        body[name] = checked
    return None


def _check(name: str, value: Any, bound: Bound) -> int | float | ApiError:
    number: int | float | None
    if bound.integer:
        number = canonical_int(value)
        kind = "an integer"
    else:
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        kind = "a number"
    if number is None:
        return errors.bad_request(f"'{name}' must be {kind}.", param=name)
    if not bound.low <= number <= bound.high:
        low, high = _show(bound.low), _show(bound.high)
        return errors.bad_request(f"'{name}' must be between {low} and {high}.", param=name)
    return number


def _show(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)
