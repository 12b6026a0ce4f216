"""A request's tags for attribution: gathered, validated, merged (pure: no I/O, no clock).

Tags come from three places:

- the key's project and the key itself (set by an administrator, checked when saved);
- OpenAI's ``metadata`` object of a chat or Responses request, read only when the tenant has
  tag rules (``metadata`` has other uses, and a tenant without rules takes no tags from it);
- the ``x-asc-tags`` header, ``k=v,k2=v2``, in any dialect.

The tenant's rules (``shared.tags``) decide which of the client's tags are accepted: a tag
they do not allow is refused with a 400 naming it (code ``unknown_tag``), or dropped when the
tenant drops unknown tags. A ``metadata`` that is not an object, a header item without ``=``,
or more than ``MAX_TAGS`` tags is a 400 (``invalid_tags``) either way. The key's and the
project's tags win over the client's (a client cannot relabel its key's traffic), the key's
over its project's; one the rules no longer allow (they changed after it was set) is left out.
Nothing unvalidated ever reaches a usage or audit record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from data_plane import errors
from data_plane.errors import ApiError
from shared.tags import MAX_TAGS, allows, tag_problems, valid_value

HEADER = "x-asc-tags"
UNKNOWN_TAG = "unknown_tag"
INVALID_TAGS = "invalid_tags"

# Tags as (key, value) pairs sorted by key: what records and usage events carry.
Tags = tuple[tuple[str, str], ...]
# A tenant's rules as compiled: key -> allowed values (empty: any well-formed value).
Rules = Mapping[str, frozenset[str]]
NO_TAGS: Tags = ()


def as_tags(pairs: Mapping[str, str]) -> Tags:
    return tuple(sorted(pairs.items()))


def accepted(rules: Rules, key: object, value: object) -> bool:
    """Whether the rules accept ``key=value``: a known key, a well-formed allowed value. (The
    rules' keys and listed values are well formed: the consistency check saw to it.)"""
    if not isinstance(key, str) or not isinstance(value, str):
        return False
    values = rules.get(key)
    if values is None:
        return False
    return value in values if values else valid_value(value)


def fixed_tags(rules: Rules, project: Tags, key: Tags) -> dict[str, str]:
    """The key's and its project's tags the rules still allow (the key's win); they are
    well formed (the consistency check saw to it)."""
    out = {k: v for k, v in project if allows(rules, k, v)}
    out.update((k, v) for k, v in key if allows(rules, k, v))
    return out


def request_tags(
    rules: Rules,
    drop_unknown: bool,
    fixed: Mapping[str, str],
    metadata: Any,
    header: str | None,
) -> Tags | ApiError:
    """The request's validated tags. ``metadata`` is the body's ``metadata`` (None when the
    request has none or its dialect takes no tags from it); ``header`` the x-asc-tags one."""
    if header is None and (metadata is None or not rules):
        return as_tags(fixed) if fixed else NO_TAGS
    asked: dict[str, Any] = {}
    if metadata is not None and rules:
        if not isinstance(metadata, dict):
            return _invalid("'metadata' must be an object of string keys and values.", "metadata")
        asked.update(metadata)
    if header is not None:
        for item in header.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                return _invalid(
                    f"The {HEADER} header takes key=value pairs separated by commas; "
                    f"{item[:80]!r} has no '='.",
                    HEADER,
                )
            asked[key.strip()] = value.strip()
    if len(asked) > MAX_TAGS:
        return _invalid(f"A request carries at most {MAX_TAGS} tags; it sent {len(asked)}.", None)
    kept: dict[str, str] = {}
    for key, value in asked.items():
        if accepted(rules, key, value):
            kept[key] = value
        elif not drop_unknown:
            return _unknown(rules, key, value)
    kept.update(fixed)
    if len(kept) > MAX_TAGS:
        return _invalid(
            f"A request carries at most {MAX_TAGS} tags, its key's and project's included.", None
        )
    return as_tags(kept)


def _invalid(message: str, param: str | None) -> ApiError:
    return errors.bad_request(message, param=param, code=INVALID_TAGS)


def _unknown(rules: Rules, key: str, value: object) -> ApiError:
    shown = f"{str(key)[:64]}={str(value)[:128]}"
    if key not in rules:
        why = "its key is not one this tenant accepts"
    elif not isinstance(value, str) or tag_problems(key, value):
        why = "its value is not a well-formed tag value (1-128 letters, digits or '_.-:/@+')"
    else:
        why = "its value is not one this tenant accepts for that key"
    return errors.bad_request(f"The tag '{shown}' is not allowed: {why}.", code=UNKNOWN_TAG)
