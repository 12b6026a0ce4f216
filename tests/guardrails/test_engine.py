"""The engine: actions, severity, placeholders, merging, what the verdict may hold, and the
guardrails over chat messages."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from data_plane.guardrails import (
    Action,
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    MessagesOutcome,
    Outcome,
    StreamGuard,
    Verdict,
    apply,
    apply_to_messages,
    combine,
    compile_policy,
    scan,
)
from tests.guardrails.corpus import JWT, POSITIVES


def policy(
    default: Action = Action.REDACT, enabled: frozenset[str] | None = None, **actions: Action
) -> CompiledGuardrails:
    return compile_policy(
        GuardrailPolicy(
            enabled=enabled if enabled is not None else GuardrailPolicy().enabled,
            actions=actions,
            default_action=default,
        )
    )


TEXT = "Mail jane@example.com please."


# --- actions and severity --------------------------------------------------------------------


def test_clean_text_is_allowed_unchanged() -> None:
    outcome = apply(policy(), "Nothing to see here, version 1.2.3, 42 items.")
    assert outcome.verdict == Verdict()
    assert outcome.decision is Action.ALLOW
    assert outcome.verdict.categories == ()
    assert outcome.verdict.reason is None
    assert not outcome.changed
    assert outcome.text == "Nothing to see here, version 1.2.3, 42 items."


@pytest.mark.parametrize(
    ("action", "text", "changed"),
    [
        (Action.ALLOW, TEXT, False),
        (Action.TAG, TEXT, False),
        (Action.REDACT, "Mail [EMAIL] please.", True),
        (Action.BLOCK, "Mail [EMAIL] please.", True),
    ],
)
def test_each_action(action: Action, text: str, changed: bool) -> None:
    outcome = apply(policy(email=action), TEXT)
    assert outcome.decision is action
    assert outcome.verdict.categories == ("email",)
    assert outcome.verdict.counts == (("email", 1),)
    assert outcome.text == text
    assert outcome.changed is changed
    if action is Action.BLOCK:
        assert outcome.verdict.reason == "guardrail_blocked:email"
        assert outcome.verdict.blocked_by == ("email",)
    else:
        assert outcome.verdict.reason is None


def test_actions_are_ranked_allow_tag_redact_block() -> None:
    assert [a.rank for a in (Action.ALLOW, Action.TAG, Action.REDACT, Action.BLOCK)] == [0, 1, 2, 3]
    assert Action("block") is Action.BLOCK


@pytest.mark.parametrize(
    ("actions", "decision"),
    [
        ({"email": Action.ALLOW, "payment_card": Action.TAG, "credential": Action.ALLOW}, "tag"),
        ({"email": Action.TAG, "payment_card": Action.REDACT, "credential": Action.TAG}, "redact"),
        ({"email": Action.BLOCK, "payment_card": Action.TAG, "credential": Action.REDACT}, "block"),
        (
            {"email": Action.ALLOW, "payment_card": Action.ALLOW, "credential": Action.ALLOW},
            "allow",
        ),
    ],
)
def test_the_most_severe_action_wins(actions: dict[str, Action], decision: str) -> None:
    text = "jane@example.com paid with 4111 1111 1111 1111 using AKIAIOSFODNN7EXAMPLE"
    outcome = apply(compile_policy(GuardrailPolicy(actions=actions)), text)
    assert outcome.decision == Action(decision)
    assert outcome.verdict.counts == (("credential", 1), ("email", 1), ("payment_card", 1))


def test_only_redact_and_block_findings_are_replaced() -> None:
    text = "jane@example.com paid with 4111 1111 1111 1111 using AKIAIOSFODNN7EXAMPLE"
    outcome = apply(
        policy(email=Action.TAG, payment_card=Action.REDACT, credential=Action.BLOCK), text
    )
    assert outcome.text == "jane@example.com paid with [PAYMENT_CARD] using [CREDENTIAL]"
    assert outcome.verdict.blocked_by == ("credential",)
    assert outcome.verdict.reason == "guardrail_blocked:credential"


def test_blocked_by_lists_every_blocking_category_sorted() -> None:
    text = "AKIAIOSFODNN7EXAMPLE and 4111 1111 1111 1111 and jane@example.com"
    outcome = apply(policy(payment_card=Action.BLOCK, credential=Action.BLOCK), text)
    assert outcome.verdict.blocked_by == ("credential", "payment_card")
    assert outcome.verdict.reason == "guardrail_blocked:credential,payment_card"


def test_counts_count_each_finding() -> None:
    outcome = apply(policy(), "a@example.com, b@example.com and c@example.org; call 020 7946 0958")
    assert outcome.verdict.counts == (("email", 3), ("phone", 1))
    assert outcome.verdict.counts_dict() == {"email": 3, "phone": 1}
    assert outcome.text == "[EMAIL], [EMAIL] and [EMAIL]; call [PHONE]"


def test_findings_of_a_category_without_detectors_enabled_are_not_reported() -> None:
    outcome = apply(policy(enabled=frozenset({"payment_card"})), TEXT)
    assert outcome.verdict == Verdict()
    assert outcome.text == TEXT


# --- placeholders and merging ----------------------------------------------------------------


@pytest.mark.parametrize("case", POSITIVES, ids=lambda c: f"{c[0]}:{c[1][:40]!r}")
def test_every_finding_is_replaced_by_its_typed_placeholder(case: tuple[str, str, str]) -> None:
    category, text, expected = case
    outcome = apply(policy(), text)
    assert outcome.text == text.replace(expected, f"[{category.upper()}]", 1)
    assert outcome.changed
    assert outcome.verdict.counts == ((category, 1),)


def test_overlapping_findings_of_one_category_count_once() -> None:
    """A Bearer header holding a JWT is found by two credential detectors."""
    outcome = apply(policy(), f"Authorization: Bearer {JWT}\n")
    assert outcome.verdict.counts == (("credential", 1),)
    assert outcome.text == "Authorization: Bearer [CREDENTIAL]\n"


def test_overlapping_findings_of_different_categories_become_one_placeholder() -> None:
    text = "login password=jane@example.com now"
    both = scan(policy(), text).findings
    assert [(s.category, text[s.start : s.end]) for s in both] == [
        ("credential", "jane@example.com"),
        ("email", "jane@example.com"),
    ]
    # Same severity: named after the earliest (the first in position, then category order).
    assert apply(policy(), text).text == "login password=[CREDENTIAL] now"
    # Otherwise after the most severe.
    outcome = apply(policy(email=Action.BLOCK), text)
    assert outcome.text == "login password=[EMAIL] now"
    assert outcome.verdict.counts == (("credential", 1), ("email", 1))


def test_partly_overlapping_findings_merge_into_one_region() -> None:
    compiled = compile_policy(
        GuardrailPolicy(
            enabled=frozenset({"email"}),
            custom_regexes=(CustomRegex("ref", (r"ref [a-z.]+@",)),),
        )
    )
    text = "see ref jane.doe@example.com ok"
    assert apply(compiled, text).text == "see [CUSTOM:REF] ok"
    blocking = compile_policy(
        GuardrailPolicy(
            enabled=frozenset({"email"}),
            actions={"email": Action.BLOCK},
            custom_regexes=(CustomRegex("ref", (r"ref [a-z.]+@",)),),
        )
    )
    assert apply(blocking, text).text == "see [EMAIL] ok"


def test_a_tagged_finding_overlapping_a_redacted_one_is_not_replaced_separately() -> None:
    text = "login password=jane@example.com now"
    outcome = apply(policy(email=Action.TAG), text)
    assert outcome.text == "login password=[CREDENTIAL] now"
    assert outcome.decision is Action.REDACT


def test_adjacent_findings_get_one_placeholder_each() -> None:
    text = "192.168.0.1,10.0.0.1"
    assert apply(policy(), text).text == "[IP_ADDRESS],[IP_ADDRESS]"


# --- what the audit side may hold ------------------------------------------------------------


def test_verdict_has_no_field_that_could_hold_text() -> None:
    assert [f.name for f in dataclasses.fields(Verdict)] == ["decision", "counts", "blocked_by"]
    outcome_fields = {f.name: f for f in dataclasses.fields(Outcome)}
    assert set(outcome_fields) == {"verdict", "text", "changed"}
    assert outcome_fields["text"].repr is False


@pytest.mark.parametrize("action", [Action.TAG, Action.REDACT, Action.BLOCK])
@pytest.mark.parametrize("case", POSITIVES, ids=lambda c: f"{c[0]}:{c[1][:40]!r}")
def test_verdict_never_holds_the_matched_text(case: tuple[str, str, str], action: Action) -> None:
    category, text, expected = case
    compiled = policy(default=action)
    outcome = apply(compiled, text)
    guard = StreamGuard(compiled)
    guard.feed(text)
    guard.finish()
    for verdict in (outcome.verdict, guard.verdict):
        held = repr(verdict) + repr(dataclasses.astuple(verdict)) + str(verdict.reason)
        assert expected not in held
        assert verdict.categories == (category,)
    assert expected not in repr(outcome)


def test_scan_result_holds_positions_only() -> None:
    result = scan(policy(), TEXT)
    assert [(s.start, s.end, s.category) for s in result.findings] == [(5, 21, "email")]
    assert "jane" not in repr(result)


def test_combine_adds_counts_and_keeps_the_most_severe_decision() -> None:
    compiled = policy(credential=Action.BLOCK, email=Action.TAG)
    verdicts = [
        apply(compiled, "jane@example.com").verdict,
        apply(compiled, "a@example.com and AKIAIOSFODNN7EXAMPLE").verdict,
        apply(compiled, "nothing").verdict,
    ]
    combined = combine(verdicts)
    assert combined == Verdict(Action.BLOCK, (("credential", 1), ("email", 2)), ("credential",))
    assert combine([]) == Verdict()


# --- chat messages ---------------------------------------------------------------------------


def test_unchanged_messages_are_the_very_same_list() -> None:
    messages: list[Mapping[str, object]] = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    result = apply_to_messages(policy(), messages)
    assert result == MessagesOutcome(Verdict(), messages, False)
    assert result.messages is messages


def test_tagged_messages_are_the_very_same_list_with_a_verdict() -> None:
    messages: list[Mapping[str, object]] = [{"role": "user", "content": "I am jane@example.com"}]
    result = apply_to_messages(policy(email=Action.TAG), messages)
    assert result.messages is messages
    assert not result.changed
    assert result.verdict == Verdict(Action.TAG, (("email", 1),))


def test_string_content_is_redacted_in_a_new_list() -> None:
    system = {"role": "system", "content": "You are helpful."}
    user = {"role": "user", "content": "My card is 4111 1111 1111 1111, mail jane@example.com"}
    messages: list[Mapping[str, object]] = [system, user]
    result = apply_to_messages(policy(), messages)
    assert result.changed
    assert result.messages is not messages
    assert result.messages[0] is system
    assert result.messages[1] == {
        "role": "user",
        "content": "My card is [PAYMENT_CARD], mail [EMAIL]",
    }
    assert user["content"] == "My card is 4111 1111 1111 1111, mail jane@example.com"
    assert result.verdict == Verdict(Action.REDACT, (("email", 1), ("payment_card", 1)))


def test_content_parts_are_redacted_and_other_parts_kept() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    clean = {"type": "text", "text": "Describe the picture."}
    secret = {"type": "text", "text": "key AKIAIOSFODNN7EXAMPLE", "cache_control": {"x": 1}}
    parts: list[object] = [clean, image, secret, "not a mapping", {"type": "text", "text": 7}]
    messages: list[Mapping[str, object]] = [{"role": "user", "content": parts}]
    result = apply_to_messages(policy(), messages)
    new_parts = result.messages[0]["content"]
    assert isinstance(new_parts, list)
    assert new_parts[0] is clean
    assert new_parts[1] is image
    assert new_parts[3:] == parts[3:]
    assert new_parts[2] == {"type": "text", "text": "key [CREDENTIAL]", "cache_control": {"x": 1}}
    assert parts[2] is secret
    assert secret["text"] == "key AKIAIOSFODNN7EXAMPLE"
    assert result.verdict.counts == (("credential", 1),)


def test_anthropic_tool_results_are_guarded() -> None:
    messages: list[Mapping[str, object]] = [
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "owner jane@example.com"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "iban DE89370400440532013000"}],
                },
                {"type": "tool_result", "tool_use_id": "t3", "content": "all clear"},
            ],
        }
    ]
    result = apply_to_messages(policy(), messages)
    parts = result.messages[0]["content"]
    assert isinstance(parts, list)
    assert parts[0]["content"] == "owner [EMAIL]"
    assert parts[1]["content"] == [{"type": "text", "text": "iban [IBAN]"}]
    assert parts[2] is messages[0]["content"][2]  # type: ignore[index]
    assert result.verdict.counts == (("email", 1), ("iban", 1))


def test_verdicts_of_all_messages_are_combined() -> None:
    compiled = policy(credential=Action.BLOCK)
    messages: list[Mapping[str, object]] = [
        {"role": "user", "content": "jane@example.com"},
        {"role": "assistant", "content": "noted"},
        {"role": "user", "content": [{"type": "text", "text": "b@example.com ghp_" + "a1" * 18}]},
    ]
    result = apply_to_messages(compiled, messages)
    assert result.verdict == Verdict(
        Action.BLOCK, (("credential", 1), ("email", 2)), ("credential",)
    )
    assert result.verdict.reason == "guardrail_blocked:credential"
    assert result.messages[1] is messages[1]
    assert result.messages[2]["content"] == [{"type": "text", "text": "[EMAIL] [CREDENTIAL]"}]
