"""Request tags for attribution: what a well-formed tag is, and what a tenant's rules allow.

One rule for both planes: the control plane applies it when a tenant's tag rules, a key's or a
project's tags, or a tag-scoped limit are saved, ``shared.consistency`` before a snapshot is
stored or applied, and the data plane to a request's tags (``data_plane.policy.tags``).

A tag is ``key=value``. Keys are 1-64 characters of letters, digits and ``_ . -``, starting with
a letter (a key that reads as a number would be a list index in a JSON path); values are
1-128 characters of letters, digits and ``_ . - : / @ +`` (no ``=`` or ``,``, so a tag always
reads back from the ``x-asc-tags`` header form ``k=v,k2=v2`` and a limit's subject ``k=v``).
A request carries at most ``MAX_TAGS`` tags. A tenant's rules map each allowed key to the
values it may take; an empty list allows any well-formed value.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

MAX_TAGS = 16
MAX_KEY_LEN = 64
MAX_VALUE_LEN = 128
_KEY = re.compile(rf"[A-Za-z][A-Za-z0-9_.-]{{0,{MAX_KEY_LEN - 1}}}")
_VALUE = re.compile(rf"[A-Za-z0-9_.:/@+-]{{1,{MAX_VALUE_LEN}}}")

# A tenant's rules: tag key -> allowed values (empty: any well-formed value).
Rules = Mapping[str, Collection[str]]


def key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return (
            f"tag key {str(key)[:80]!r} must be 1-{MAX_KEY_LEN} letters, digits, '_', '.' or '-', "
            f"starting with a letter"
        )
    return None


def valid_value(value: str) -> bool:
    return _VALUE.fullmatch(value) is not None


def value_problem(key: str, value: object) -> str | None:
    if not isinstance(value, str) or not _VALUE.fullmatch(value):
        return (
            f"tag {key[:80]!r} value {str(value)[:80]!r} must be 1-{MAX_VALUE_LEN} letters, "
            f"digits or '_ . - : / @ +'"
        )
    return None


def tag_problems(key: object, value: object) -> list[str]:
    problem = key_problem(key)
    if problem is not None:
        return [problem]
    problem = value_problem(str(key), value)
    return [] if problem is None else [problem]


def tags_problems(tags: object) -> list[str]:
    """Problems of a set of tags (a key's or a project's): a dict of well-formed key -> value,
    at most ``MAX_TAGS`` of them."""
    if not isinstance(tags, Mapping):
        return ['tags are an object of key -> value, e.g. {"team": "search"}']
    out = [p for k, v in tags.items() for p in tag_problems(k, v)]
    if len(tags) > MAX_TAGS:
        out.append(f"at most {MAX_TAGS} tags")
    return out


def rules_problems(rules: object) -> list[str]:
    """Problems of a tenant's tag rules: a dict of well-formed key -> list of values."""
    if not isinstance(rules, Mapping):
        return ['tag rules are an object of key -> allowed values, e.g. {"feature": []}']
    out: list[str] = []
    for key, values in rules.items():
        problem = key_problem(key)
        if problem is not None:
            out.append(problem)
        elif not isinstance(values, list | tuple):
            out.append(f"tag {key!r}: the allowed values are a list (empty: any value)")
        else:
            out.extend(p for v in values if (p := value_problem(key, v)) is not None)
    return out


def allows(rules: Rules, key: str, value: str) -> bool:
    """Whether the tenant's rules accept the (well-formed) tag ``key=value``."""
    values = rules.get(key)
    return values is not None and (not values or value in values)


def not_allowed(rules: Rules, tags: Mapping[str, str]) -> list[str]:
    """The tags of ``tags`` the rules refuse, as ``key=value``."""
    return [f"{k}={v}" for k, v in sorted(tags.items()) if not allows(rules, k, v)]


def parse_subject(subject: str) -> tuple[str, str] | None:
    """A tag limit's subject ``key=value`` as (key, value); None when malformed."""
    key, sep, value = subject.partition("=")
    if not sep or tag_problems(key, value):
        return None
    return key, value


def subject(key: str, value: str) -> str:
    return f"{key}={value}"
