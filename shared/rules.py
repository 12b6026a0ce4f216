"""Rules on one configuration entity at a time: a guardrail policy, a limit, a key set.

Each rule is written once, here, and called from two places: ``shared.consistency`` applies
them to every entity of a snapshot (both planes refuse a snapshot that breaks one), and the
control plane applies them when a row is saved, so a bad row is refused with a field error
instead of reaching the publisher, where it would stop every tenant's publish. The functions
are pure (no I/O, no clock) and return problems by field name, empty when the entity is sound.

``max_len`` of a custom pattern list and the length of a keyword bound how far the data plane
looks back in streamed output: the stream guard holds back the longest reach of the enabled
detectors (``max_len + 2`` for a pattern list, the longest word + 2 for a keyword list) and
rescans that much text at every step. Reach 0 is refused by the data plane's guardrail
compiler; a huge one would hold back the whole completion (nothing streamed until the end)
and rescan all of it every few characters; past 2**32 - 1 it no longer fits the snapshot's
uint32 and the snapshot cannot even be built. ``MAX_MATCH_LEN`` bounds both, several times the
longest built-in reach (131 characters, an e-mail address).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from shared import windows
from shared.guardrails import ACTIONS, CATEGORIES
from shared.pb import snapshot_pb2

Problems = dict[str, list[str]]

# A pattern list's max_len when it sets none (0 in the snapshot means unset).
DEFAULT_MAX_LEN = 64
MAX_MATCH_LEN = 1024
LIST_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The largest amount a limit can carry: the snapshot's int64 (nano-USD for a budget).
MAX_LIMIT_UNITS = 2**63 - 1

# The control plane's names of the snapshot's limit enums.
LIMIT_KINDS: Mapping[str, snapshot_pb2.LimitKind] = {
    "budget": snapshot_pb2.LIMIT_KIND_BUDGET,
    "requests": snapshot_pb2.LIMIT_KIND_REQUESTS,
    "tokens": snapshot_pb2.LIMIT_KIND_TOKENS,
}
LIMIT_PERIODS: Mapping[str, snapshot_pb2.LimitPeriod] = {
    windows.MINUTE: snapshot_pb2.LIMIT_PERIOD_MINUTE,
    windows.DAY: snapshot_pb2.LIMIT_PERIOD_DAY,
    windows.WEEK: snapshot_pb2.LIMIT_PERIOD_WEEK,
    windows.MONTH: snapshot_pb2.LIMIT_PERIOD_MONTH,
    windows.NONE: snapshot_pb2.LIMIT_PERIOD_NONE,
}
_KNOWN_PERIODS = frozenset(LIMIT_PERIODS.values())


@dataclass(frozen=True, slots=True)
class PatternList:
    """Regular expressions reported as category ``custom:<name>``."""

    name: str
    patterns: Sequence[str]
    ignore_case: bool = False
    max_len: int = DEFAULT_MAX_LEN


@dataclass(frozen=True, slots=True)
class WordList:
    """Words or phrases reported as category ``keyword:<name>``."""

    name: str
    words: Sequence[str]


def _add(problems: Problems, field: str, message: str) -> None:
    problems.setdefault(field, []).append(message)


def guardrail_problems(
    categories: Collection[str],
    actions: Mapping[str, str],
    default_action: str,
    pattern_lists: Sequence[PatternList],
    word_lists: Sequence[WordList],
) -> Problems:
    """A guardrail policy's detector settings; fields as in the control plane's model.

    ``default_action`` empty means "redact"; an empty ``categories`` means all of them.
    """
    problems: Problems = {}
    if unknown := sorted(set(categories) - CATEGORIES):
        _add(problems, "categories", f"unknown categories {unknown}; known: {sorted(CATEGORIES)}")
    for pattern_list in pattern_lists:
        for message in pattern_list_problems(pattern_list):
            _add(problems, "custom_patterns", message)
    for word_list in word_lists:
        for message in word_list_problems(word_list):
            _add(problems, "keyword_lists", message)
    custom = [f"custom:{p.name}" for p in pattern_lists]
    keywords = [f"keyword:{w.name}" for w in word_lists]
    for field, names in (("custom_patterns", custom), ("keyword_lists", keywords)):
        if repeated := sorted({n.partition(":")[2] for n in names if names.count(n) > 1}):
            _add(problems, field, f"names must be unique: {repeated} repeated")
    known = CATEGORIES.union(custom, keywords)
    for category, action in sorted(actions.items()):
        if category not in known:
            _add(problems, "actions", f"action for unknown category {category!r}")
        elif action not in ACTIONS:
            _add(problems, "actions", f"unknown action {action!r} for {category!r}; {_one_of()}")
    if default_action and default_action not in ACTIONS:
        _add(problems, "default_action", f"unknown action {default_action!r}; {_one_of()}")
    return problems


def _one_of() -> str:
    return f"one of {list(ACTIONS)}"


def pattern_list_problems(pattern_list: PatternList) -> list[str]:
    name = pattern_list.name
    problems = _list_problems(name, "patterns", pattern_list.patterns)
    if not 1 <= pattern_list.max_len <= MAX_MATCH_LEN:
        problems.append(
            f"{name}: max_len {pattern_list.max_len} is out of range: "
            f"a whole number from 1 to {MAX_MATCH_LEN}"
        )
    flags = re.IGNORECASE if pattern_list.ignore_case else 0
    for pattern in pattern_list.patterns:
        try:
            re.compile(pattern, flags)
        # re.error for syntax, OverflowError for a repeat count too large, RecursionError for
        # nesting too deep: all mean the data plane could not compile it either.
        except (re.error, OverflowError, RecursionError, ValueError) as exc:
            problems.append(f"{name}: bad pattern {pattern!r}: {exc}")
    return problems


def word_list_problems(word_list: WordList) -> list[str]:
    name = word_list.name
    problems = _list_problems(name, "words", word_list.words)
    if long := [w[:20] + "..." for w in word_list.words if len(w.strip()) > MAX_MATCH_LEN]:
        problems.append(f"{name}: words longer than {MAX_MATCH_LEN} characters: {long}")
    return problems


def _list_problems(name: str, items: str, values: Sequence[str]) -> list[str]:
    problems: list[str] = []
    if not LIST_NAME.fullmatch(name):
        problems.append(f"invalid list name {name!r}: 1 to 64 letters, digits, _ and -")
    if not values or not all(v.strip() for v in values):
        problems.append(f'{name}: "{items}" must be a non-empty list of non-blank strings')
    return problems


def limit_problems(kind: int, period: int, amount: int) -> Problems:
    """A limit's kind and period (``snapshot_pb2`` enums) and its amount in lease units
    (nano-USD for a budget, requests or tokens otherwise). Which periods the control plane
    offers for which kind (budgets per day and longer, rate limits per minute) is its own
    choice, made when a limit is saved: the data plane serves any period for any kind."""
    problems: Problems = {}
    if kind not in LIMIT_KINDS.values():
        _add(problems, "kind", f"unknown limit kind {kind}")
    if period not in _KNOWN_PERIODS:
        _add(problems, "period", f"unknown limit period {period}")
    if not 0 <= amount <= MAX_LIMIT_UNITS:
        largest = (
            f"{MAX_LIMIT_UNITS // 10**9} USD"
            if kind == snapshot_pb2.LIMIT_KIND_BUDGET
            else str(MAX_LIMIT_UNITS)
        )
        _add(problems, "amount", f"the amount is out of range: from 0 to {largest}")
    return problems


def jwks_problems(jwks_json: str) -> list[str]:
    """The issuer's JSON Web Key Set, as JSON (checked for shape only: the data plane also
    needs at least one of its keys to load)."""
    try:
        document = json.loads(jwks_json)
    except (ValueError, RecursionError) as exc:
        return [f"the key set is not JSON: {exc}"]
    return jwks_document_problems(document)


def jwks_document_problems(document: object) -> list[str]:
    """A parsed JSON Web Key Set: ``{"keys": [{...}, ...]}`` with a signing key."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        return ['not a JSON Web Key Set: {"keys": [{...}, ...]}']
    if not any(isinstance(k.get("kty"), str) and k.get("use", "sig") == "sig" for k in keys):
        return ['the key set holds no signing key (a "kty", and "use" absent or "sig")']
    return []
