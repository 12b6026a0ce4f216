"""Built-in detectors over a corpus of positives and negatives, custom regexes, keyword lists,
the detector contract the stream guard relies on, and policy compilation errors."""

from __future__ import annotations

import pytest

from data_plane.guardrails import (
    BUILTIN_CATEGORIES,
    Action,
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    GuardrailPolicyError,
    KeywordList,
    compile_policy,
    scan,
)
from data_plane.guardrails.detectors import BUILTIN_DETECTORS
from tests.guardrails.corpus import NEGATIVES, POSITIVES

ALL = compile_policy(GuardrailPolicy())


def found(text: str, category: str) -> list[str]:
    """The substrings of `text` reported as `category` with every built-in enabled."""
    return [text[s.start : s.end] for s in scan(ALL, text).findings if s.category == category]


def found_with(compiled: CompiledGuardrails, text: str) -> list[tuple[str, str]]:
    return [(s.category, text[s.start : s.end]) for s in scan(compiled, text).findings]


def _id(case: tuple[str, ...]) -> str:
    return f"{case[0]}:{case[1][:40]!r}"


def test_the_corpus_covers_every_builtin_category() -> None:
    assert {c for c, _, _ in POSITIVES} == BUILTIN_CATEGORIES
    assert {c for c, _ in NEGATIVES} == BUILTIN_CATEGORIES


@pytest.mark.parametrize("case", POSITIVES, ids=_id)
def test_positive_is_found_with_its_exact_span(case: tuple[str, str, str]) -> None:
    category, text, expected = case
    assert found(text, category) == [expected]


@pytest.mark.parametrize("case", POSITIVES, ids=_id)
def test_positive_is_not_also_reported_as_another_category(case: tuple[str, str, str]) -> None:
    category, text, _ = case
    others = {s.category for s in scan(ALL, text).findings} - {category}
    assert others == set()


# Truncated PEM blocks run to the end of the text by design (a cut key is still a key).
_RUNS_TO_END = {
    text for _, text, expected in POSITIVES if "END" not in expected and "PRIVATE" in text
}


@pytest.mark.parametrize("case", [p for p in POSITIVES if p[1] not in _RUNS_TO_END], ids=_id)
@pytest.mark.parametrize(
    ("before", "after"), [("Hello, here you go: ", " Thanks!"), ("x\n", "\ny"), ("", "")]
)
def test_positive_inside_prose_keeps_its_span(
    case: tuple[str, str, str], before: str, after: str
) -> None:
    category, text, expected = case
    assert found(before + text + after, category) == [expected]


@pytest.mark.parametrize("case", NEGATIVES, ids=_id)
def test_negative_is_not_reported(case: tuple[str, str]) -> None:
    category, text = case
    assert found(text, category) == []


def test_several_findings_of_one_category_in_one_text() -> None:
    text = (
        "cards 4111111111111111 5555555555554444, accounts DE89370400440532013000 "
        "GB29NWBK60161331926819 and DE89370400440532013000 AND NL91ABNA0417164300"
    )
    assert found(text, "payment_card") == ["4111111111111111", "5555555555554444"]
    assert found(text, "iban") == [
        "DE89370400440532013000",
        "GB29NWBK60161331926819",
        "DE89370400440532013000",
        "NL91ABNA0417164300",
    ]


def test_disabled_categories_are_not_scanned() -> None:
    only_cards = compile_policy(GuardrailPolicy(enabled=frozenset({"payment_card"})))
    text = "jane@example.com 4111 1111 1111 1111 AKIAIOSFODNN7EXAMPLE"
    assert found_with(only_cards, text) == [("payment_card", "4111 1111 1111 1111")]
    nothing = compile_policy(GuardrailPolicy(enabled=frozenset()))
    assert found_with(nothing, text) == []
    assert nothing.hold_back == 0


# --- the detector contract (what the stream guard relies on) --------------------------------


@pytest.mark.parametrize("case", POSITIVES, ids=_id)
def test_find_reports_only_findings_at_or_after_pos(case: tuple[str, str, str]) -> None:
    _, text, _ = case
    for detector in BUILTIN_DETECTORS:
        for pos in range(len(text) + 1):
            assert all(span.start >= pos for span in detector.find(text, pos)), (
                detector.category,
                pos,
            )


@pytest.mark.parametrize("case", POSITIVES, ids=_id)
def test_finding_is_reported_within_reach_of_its_start(case: tuple[str, str, str]) -> None:
    """Once `reach` characters from a finding's start are visible it has been reported, with
    its final extent unless the detector is open-ended (then it only grows)."""
    category, text, expected = case
    start = text.index(expected)
    checked = False
    for detector in BUILTIN_DETECTORS:
        if detector.category != category:
            continue
        final = [s for s in detector.find(text, 0) if s.start == start]
        if not final:
            continue
        checked = True
        visible = text[: start + detector.reach]
        early = [s for s in detector.find(visible, 0) if s.start == start]
        if detector.open_ended:
            assert early
            assert early[0].end <= final[0].end
        else:
            assert early == final
    assert checked


def test_scanning_from_an_offset_sees_the_look_behind_context() -> None:
    """`pos` is where matches may start, not where the text starts: "a4111..." is a card in
    the whole text, and "X" + AWS key id is not a key from any offset."""
    text = "XAKIAIOSFODNN7EXAMPLE and ghp_" + "a" * 36
    for pos in range(len(text)):
        spans = [s for d in BUILTIN_DETECTORS for s in d.find(text, pos)]
        assert all(text[s.start : s.end] != "AKIAIOSFODNN7EXAMPLE" for s in spans)


# --- custom regexes and keyword lists --------------------------------------------------------


def test_custom_regex_reports_its_own_category() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            enabled=frozenset(),
            custom_regexes=(CustomRegex("project", (r"PRJ-\d{4,8}", r"\bCODE[A-Z]{3}\b")),),
        )
    )
    text = "see PRJ-123456 and CODEXYZ, not prj-1234 nor CODEXYZW"
    assert found_with(compiled, text) == [
        ("custom:project", "PRJ-123456"),
        ("custom:project", "CODEXYZ"),
    ]
    assert compiled.placeholders["custom:project"] == "[CUSTOM:PROJECT]"
    assert compiled.hold_back == 64 + 2


def test_custom_regex_ignore_case_and_max_len() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            enabled=frozenset(),
            custom_regexes=(CustomRegex("ticket", (r"tkt-\d+",), ignore_case=True, max_len=20),),
        )
    )
    assert found_with(compiled, "TKT-42 and tkt-7") == [
        ("custom:ticket", "TKT-42"),
        ("custom:ticket", "tkt-7"),
    ]
    assert compiled.hold_back == 22


def test_custom_regex_that_matches_the_empty_string_reports_only_real_matches() -> None:
    compiled = compile_policy(
        GuardrailPolicy(enabled=frozenset(), custom_regexes=(CustomRegex("x", (r"x*",)),))
    )
    assert found_with(compiled, "a xx b") == [("custom:x", "xx")]


def test_keyword_list_matches_whole_words_case_insensitively() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            enabled=frozenset(),
            keyword_lists=(KeywordList("codenames", ("Falcon", "blue moon", "c++", "  ")),),
        )
    )
    text = "FALCON is go; falconry is not; Blue Moon rises; bluemoon no; c++ yes; xc++ no"
    assert found_with(compiled, text) == [
        ("keyword:codenames", "FALCON"),
        ("keyword:codenames", "Blue Moon"),
        ("keyword:codenames", "c++"),
    ]
    assert compiled.placeholders["keyword:codenames"] == "[KEYWORD:CODENAMES]"


def test_longest_keyword_wins_where_keywords_overlap() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            enabled=frozenset(),
            keyword_lists=(KeywordList("k", ("project", "project falcon")),),
        )
    )
    assert found_with(compiled, "the project falcon plan") == [("keyword:k", "project falcon")]


def test_a_custom_regex_and_a_keyword_list_may_share_a_name() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            enabled=frozenset(),
            custom_regexes=(CustomRegex("acme", (r"ACME-\d+",)),),
            keyword_lists=(KeywordList("acme", ("acme corp",)),),
        )
    )
    assert set(compiled.actions) == {"custom:acme", "keyword:acme"}


# --- compile errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (GuardrailPolicy(enabled=frozenset({"email", "passport"})), "unknown guardrail"),
        (
            GuardrailPolicy(custom_regexes=(CustomRegex("bad", (r"(unclosed",)),)),
            "missing",
        ),
        (
            GuardrailPolicy(custom_regexes=(CustomRegex("ok", (r"a",)), CustomRegex("ok", ("b",)))),
            "unique",
        ),
        (
            GuardrailPolicy(keyword_lists=(KeywordList("kw", ("a",)), KeywordList("kw", ("b",)))),
            "unique",
        ),
        (GuardrailPolicy(custom_regexes=(CustomRegex("empty", ()),)), "non-empty"),
        (GuardrailPolicy(keyword_lists=(KeywordList("empty", ()),)), "non-empty"),
        (GuardrailPolicy(keyword_lists=(KeywordList("blank", (" ", "")),)), "empty"),
        (GuardrailPolicy(custom_regexes=(CustomRegex("has space", ("a",)),)), "invalid list"),
        (GuardrailPolicy(keyword_lists=(KeywordList("", ("a",)),)), "invalid list"),
        (GuardrailPolicy(custom_regexes=(CustomRegex("zero", ("a",), max_len=0),)), "max_len"),
        (GuardrailPolicy(actions={"custom:nope": Action.BLOCK}), "unknown category"),
        (GuardrailPolicy(actions={"email": "shred"}), "unknown action"),  # type: ignore[dict-item]
        (GuardrailPolicy(default_action="shred"), "default action"),  # type: ignore[arg-type]
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_invalid_policy_raises_policy_error(policy: GuardrailPolicy, message: str) -> None:
    with pytest.raises(GuardrailPolicyError, match=message):
        compile_policy(policy)


def test_a_bare_string_is_not_taken_character_by_character() -> None:
    with pytest.raises(GuardrailPolicyError, match="tuple of strings"):
        compile_policy(GuardrailPolicy(custom_regexes=(CustomRegex("r", "PRJ-\\d+"),)))  # type: ignore[arg-type]
    with pytest.raises(GuardrailPolicyError, match="tuple of strings"):
        compile_policy(GuardrailPolicy(keyword_lists=(KeywordList("k", "falcon"),)))  # type: ignore[arg-type]


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(GuardrailPolicyError, ValueError)


def test_action_for_a_builtin_category_that_is_not_enabled_is_accepted() -> None:
    compiled = compile_policy(
        GuardrailPolicy(enabled=frozenset({"email"}), actions={"payment_card": Action.BLOCK})
    )
    assert dict(compiled.actions) == {"email": Action.REDACT}
