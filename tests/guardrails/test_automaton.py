"""The automaton and its chains find exactly what each detector's own pass over every position
finds: built-in detectors, tenant patterns it takes (widened by `transpile`) and those it
cannot take (their own pass), on ASCII and non-ASCII text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.guardrails import (
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    KeywordList,
    Span,
    compile_policy,
    scan,
)
from data_plane.guardrails.automaton import accepts, shadow
from data_plane.guardrails.engine import drop_fragments, merge_same_category
from data_plane.guardrails.spans import Trigger
from data_plane.guardrails.transpile import Untranslatable, transpile
from tests.guardrails.corpus import NEGATIVES, POSITIVES

PROPERTY = settings(max_examples=300, deadline=None, database=None)

ALL = compile_policy(GuardrailPolicy())
TENANT_PATTERNS = (
    r"PRJ-\d{4,8}",
    r"(?<=ref )[a-z]+\d",  # look-behind: dropped for the automaton, checked by Python
    r"\bK\w+",
    r"[^\s]{3}@",
    r"(?i)ſ\d",  # the long s matches "s" and "S" without case
    r"(a)\1b",  # back-reference: its own pass
    r"x*",  # matches the empty string: its own pass
    r"[٠-٩]{3}",  # Arabic-Indic digits
    r"(?a:\w+)=\d",
)
CUSTOM = compile_policy(
    GuardrailPolicy(
        custom_regexes=(
            CustomRegex("tenant", TENANT_PATTERNS),
            CustomRegex("ticket", (r"tkt-\d+",), ignore_case=True),
        ),
        keyword_lists=(KeywordList("words", ("falcon", "blue moon", "café", "c++", "Kelvin")),),
    )
)

# Characters the shadow maps specially: letters that case-insensitive matching equates with
# ASCII ones, non-ASCII digits, other non-ASCII letters, spaces and symbols.
SPECIAL = ["\u212a", "\u017f", "\u0130", "\u0131", "٣", "٤٥", "é", "—", "\u00a0", "\u2028", "€"]
PIECES = (
    [text for _, text, _ in POSITIVES]
    + [text for _, text in NEGATIVES]
    + SPECIAL
    + [" ", "\n", ". ", ", ", "-", "@", ":", "::", "+", "(", ")", "=", "'", '"', "\t", "x"]
    + ["0", "1", "12", "123", "4111", " 1111", "DE89", "192.168.", "2001:db8::", "+44 "]
    + ["password", "Bearer ", "ssn ", "MRN ", "patient id ", "sk-", "ghp_", "AKIA", "eyJ"]
    + ["-----BEGIN ", "ref ", "PRJ-", "tkt-", "falcon", "café", "c++", "aab", "K"]
)


def reference(compiled: CompiledGuardrails, text: str) -> tuple[Span, ...]:
    """What the scan finds when every detector makes its own pass over the whole text."""
    found = [(span, d) for d in compiled.detectors for span in d.find(text, 0)]
    return tuple(merge_same_category(span for span, _ in drop_fragments(found)))


@st.composite
def texts(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return "".join(draw(st.lists(st.sampled_from(PIECES), max_size=14)))
    alphabet = "ab1 @.:-=\n4AKIsk_0XYZ+()é٣" + "\u212a\u017f"
    return draw(st.text(alphabet=alphabet, max_size=250))


@st.composite
def digit_texts(draw: st.DrawFn) -> str:
    """Runs of digit groups, the hardest case for cards, IBANs, phones and national ids."""
    groups = draw(
        st.lists(st.text(alphabet="0123456789", min_size=1, max_size=7), min_size=1, max_size=9)
    )
    seps = draw(st.lists(st.sampled_from([" ", "-", "", ".", ", ", " x ", "\n"]), min_size=9))
    prefix = draw(st.sampled_from(["", "card ", "DE", "+", "(", "tel. 0", "IBAN GB29 "]))
    return prefix + "".join(g + s for g, s in zip(groups, seps, strict=False))


@pytest.mark.parametrize("case", POSITIVES, ids=lambda c: f"{c[0]}:{c[1][:40]!r}")
@pytest.mark.parametrize("compiled", [ALL, CUSTOM], ids=["builtin", "custom"])
def test_every_corpus_positive_is_found_as_by_the_detectors_own_pass(
    case: tuple[str, str, str], compiled: CompiledGuardrails
) -> None:
    _, text, _ = case
    for wrapped in (text, f"Hello: {text}. Thanks!", f"é{text}—", f"x{text}9"):
        assert scan(compiled, wrapped).findings == reference(compiled, wrapped)


@PROPERTY
@given(text=texts(), compiled=st.sampled_from([ALL, CUSTOM]))
def test_automaton_scan_equals_every_detector_pass(text: str, compiled: CompiledGuardrails) -> None:
    assert scan(compiled, text).findings == reference(compiled, text)


@PROPERTY
@given(text=digit_texts())
def test_automaton_scan_equals_every_detector_pass_on_digit_runs(text: str) -> None:
    assert scan(ALL, text).findings == reference(ALL, text)


@pytest.mark.parametrize(
    ("text", "category", "expected"),
    [
        ("api_\u212aey = hunter2xyz", "credential", "hunter2xyz"),  # Kelvin sign as "k"
        ("\u017fsn 123-45-6789", "us_ssn", "123-45-6789"),  # long s as "s"
        ("my \u212aelvin is here", "keyword:words", "\u212aelvin"),
        ("Ref: ٣٤٥ then", "custom:tenant", "٣٤٥"),
        ("\u017f7 and S8", "custom:tenant", "\u017f7"),
    ],
)
def test_non_ascii_letters_and_digits_reach_the_patterns_that_match_them(
    text: str, category: str, expected: str
) -> None:
    found = [text[s.start : s.end] for s in scan(CUSTOM, text).findings if s.category == category]
    assert expected in found
    assert scan(CUSTOM, text).findings == reference(CUSTOM, text)


def test_a_tenant_pattern_the_automaton_cannot_take_keeps_its_own_pass() -> None:
    fallback = {regex.pattern for regex, _ in CUSTOM.scanner.fallbacks}
    assert fallback == {r"(a)\1b", r"x*"}
    text = "aab and xx and PRJ-1234"
    assert [text[s.start : s.end] for s in scan(CUSTOM, text).findings] == ["aab", "xx", "PRJ-1234"]


# --- the shadow and the translation of tenant patterns ---------------------------------------


def test_shadow_is_one_byte_per_character() -> None:
    assert shadow("plain text 42") == b"plain text 42"
    text = "a\u212a\u017f\u0130\u0131٣é—\U0001f600"
    assert shadow(text) == b"akSii0\x80\x80\x80".replace(b"S", b"s")
    assert len(shadow(text)) == len(text)


@pytest.mark.parametrize(
    ("pattern", "texts_that_match"),
    [
        (r"(?<!\w)foo(?!\w)", ["foo", "a foo b"]),
        (r"\bK\w+", ["Kelvin", "K\u212a", "Kéa"]),
        (r"(?i)[^k]x", ["\u212ax", "éx", "ax"]),
        (r"[^\s]{2}", ["é\u212a", "٣a"]),
        (r"\d\d", ["٣4", "42"]),
        (r"(?s).a", ["\na", "éa"]),
        (r"(?>ab|a)c", ["ac", "abc"]),
        (r"a++b", ["aab"]),
    ],
)
def test_a_translated_pattern_matches_wherever_python_does(
    pattern: str, texts_that_match: list[str]
) -> None:
    widened = re.compile(transpile(pattern).encode(), re.DOTALL)
    for text in texts_that_match:
        python = re.compile(pattern)
        for m in python.finditer(text):
            assert widened.fullmatch(shadow(text)[m.start() : m.end()]), (pattern, text)


def test_back_references_cannot_be_translated_and_empty_matches_are_refused() -> None:
    with pytest.raises(Untranslatable):
        transpile(r"(a)\1")
    with pytest.raises(Untranslatable):
        transpile(r"(a)?(?(1)b|c)")
    assert not accepts(Trigger(transpile(r"x*"), 0))
    assert accepts(Trigger(transpile(r"x+"), 0))
