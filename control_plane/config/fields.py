"""Value normalisers of the configuration document: each returns the canonical form of a
value or raises ValueError saying what it should be (pure, no database)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_datetime


def text(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("a string")
    return str(value)


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("a whole number, 0 or more")
    return value


def optional_count(value: Any) -> int | None:
    return None if value is None else count(value)


def decimal(value: Any) -> str:
    """Money and amounts as strings ("1.25"): exact, and the same whatever the database."""
    if isinstance(value, bool):
        raise ValueError("a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("a number") from None
    if not number.is_finite() or number < 0:
        raise ValueError("a number, 0 or more")
    return format(number.normalize(), "f")


def timestamp(value: Any) -> str | None:
    if value is None:
        return None
    parsed = parse_datetime(str(value)) if not hasattr(value, "tzinfo") else value
    if parsed is None or parsed.tzinfo is None:
        raise ValueError("an ISO 8601 time with its offset, e.g. 2027-01-31T00:00:00Z")
    return str(parsed.astimezone(UTC).isoformat().replace("+00:00", "Z"))


def strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError("a list of strings")
    return [text(v) for v in value]


def sorted_strings(value: Any) -> list[str]:
    return sorted(set(strings(value)))


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError("a mapping")
    return value


def json_list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("a list")
    return value


def numbers(value: Any) -> list[float | int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ValueError("a list of numbers")
    return value


def choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return str(value)

    return check
