"""The stream guard: whatever the chunking, the released text is exactly `apply(whole).text`
(redact, tag, allow), and with block nothing of the secret is ever released."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.guardrails import (
    Action,
    CompiledGuardrails,
    CustomRegex,
    GuardrailPolicy,
    KeywordList,
    StreamGuard,
    Verdict,
    apply,
    compile_policy,
)
from tests.guardrails.corpus import (
    AWS_KEY_ID,
    GITHUB_PAT,
    JWT,
    OPENAI_KEY,
    PEM_RSA,
    POSITIVES,
    SLACK_BOT,
)

PROPERTY = settings(max_examples=200, deadline=None, database=None)

REDACT_ALL = compile_policy(GuardrailPolicy())
WITH_CUSTOM = compile_policy(
    GuardrailPolicy(
        actions={"email": Action.TAG, "ip_address": Action.ALLOW},
        custom_regexes=(CustomRegex("project", (r"PRJ-\d{4,8}",), max_len=12),),
        keyword_lists=(KeywordList("codenames", ("falcon", "blue moon")),),
    )
)
TAG_ALL = compile_policy(GuardrailPolicy(default_action=Action.TAG))
CREDENTIALS_ONLY = compile_policy(GuardrailPolicy(enabled=frozenset({"credential"})))
POLICIES = [REDACT_ALL, WITH_CUSTOM, TAG_ALL, CREDENTIALS_ONLY]

PROSE = [
    "Sure, here is what you asked for.",
    "The quarterly report shows revenue grew 12% to 4.2 million.",
    "Version 2.1 of the client adds retries (see section 4).",
    "Let me know if that helps!",
    "Step 3: run `make test` and check the output.",
    "Project falcon ships PRJ-20931 next week.",
    "x = {'a': 1, 'b': [2, 3]}",
    "Call me maybe.",
]
SECRET_TEXTS = [text for _, text, _ in POSITIVES]


def released_by(compiled: CompiledGuardrails, chunks: Iterable[str], step: int = 32) -> str:
    guard = StreamGuard(compiled, step=step)
    out = [guard.feed(chunk) for chunk in chunks]
    out.append(guard.finish())
    return "".join(out)


def split(text: str, cuts: Iterable[int]) -> list[str]:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def assert_same_as_whole(
    compiled: CompiledGuardrails, text: str, chunks: Sequence[str], step: int = 32
) -> None:
    assert "".join(chunks) == text
    guard = StreamGuard(compiled, step=step)
    out = [guard.feed(chunk) for chunk in chunks]
    out.append(guard.finish())
    whole = apply(compiled, text)
    assert "".join(out) == whole.text
    assert guard.verdict == whole.verdict
    assert not guard.blocked


# --- redact, tag and allow: the same text as apply() on the whole ----------------------------

LETTER = (
    "Dear team,\nthe customer (jane.doe@example.com, +44 20 7946 0958) paid with card "
    "4111 1111 1111 1111 from IBAN DE89 3704 0044 0532 0130 00. Their server 192.168.1.10 "
    f'leaked {AWS_KEY_ID} and Authorization: Bearer {JWT} plus password = "correct horse".\n'
    f"{PEM_RSA}\nMRN: 1234567. Regards."
)


@pytest.mark.parametrize("compiled", POLICIES, ids=["redact", "custom", "tag", "credentials"])
def test_every_split_point_of_a_text_with_secrets(compiled: CompiledGuardrails) -> None:
    for i in range(len(LETTER) + 1):
        assert_same_as_whole(compiled, LETTER, [LETTER[:i], LETTER[i:]])


@pytest.mark.parametrize("step", [1, 7, 32, 200])
def test_one_character_at_a_time(step: int) -> None:
    assert_same_as_whole(REDACT_ALL, LETTER, list(LETTER), step=step)


@pytest.mark.parametrize("case", POSITIVES, ids=lambda c: f"{c[0]}:{c[1][:40]!r}")
def test_every_split_point_of_every_corpus_positive(case: tuple[str, str, str]) -> None:
    _, secret_text, _ = case
    text = f"{PROSE[0]} {secret_text}\n{PROSE[1]}"
    for i in range(len(text) + 1):
        assert_same_as_whole(REDACT_ALL, text, [text[:i], text[i:]], step=8)


def test_secret_split_into_three_around_every_pair_of_points() -> None:
    text = f"key {OPENAI_KEY} then card 4111-1111-1111-1111."
    for i in range(1, len(text)):
        for j in range(i, len(text), 5):
            assert_same_as_whole(REDACT_ALL, text, [text[:i], text[i:j], text[j:]], step=4)


def test_chained_tokens_are_redacted_as_in_the_whole_text() -> None:
    """Two JWTs joined by a dot: a scan starting inside the first (released) one must not
    swallow the second (it did: the whole second token was released)."""
    first, second = JWT, JWT.replace("SflKx", "AbCdE")
    text = f"Here are the two tokens you asked for: {first}.{second} and that is all."
    assert apply(REDACT_ALL, text).text == (
        "Here are the two tokens you asked for: [CREDENTIAL].[CREDENTIAL] and that is all."
    )
    for i in range(len(text) + 1):
        assert_same_as_whole(REDACT_ALL, text, [text[:i], text[i:]])
    for step in (1, 8, 32):
        assert_same_as_whole(REDACT_ALL, text, list(text), step=step)


@st.composite
def texts(draw: st.DrawFn) -> str:
    pieces = draw(
        st.lists(st.sampled_from(PROSE + SECRET_TEXTS + [PEM_RSA, LETTER]), min_size=1, max_size=8)
    )
    separators = draw(st.lists(st.sampled_from([" ", "\n", ". ", ", ", "\n\n"]), min_size=8))
    return "".join(p + s for p, s in zip(pieces, separators, strict=False))


@st.composite
def chunked(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(texts())
    cuts = draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=60))
    return text, split(text, cuts)


@PROPERTY
@given(
    case=chunked(),
    compiled=st.sampled_from(POLICIES),
    step=st.sampled_from([1, 5, 32, 100]),
)
def test_random_chunkings_release_exactly_the_whole_text_result(
    case: tuple[str, list[str]], compiled: CompiledGuardrails, step: int
) -> None:
    text, chunks = case
    assert_same_as_whole(compiled, text, chunks, step=step)


@PROPERTY
@given(text=st.text(alphabet="ab1 @.:-=\n4AKIsk_", max_size=300), data=st.data())
def test_arbitrary_text_never_breaks_the_guard(text: str, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=20))
    assert_same_as_whole(REDACT_ALL, text, split(text, cuts), step=data.draw(st.integers(1, 40)))


# --- block: nothing of the secret is ever released -------------------------------------------

BLOCKED_SECRETS = [
    ("credential", AWS_KEY_ID),
    ("credential", GITHUB_PAT),
    ("credential", OPENAI_KEY),
    ("credential", SLACK_BOT),
    ("credential", JWT),
    ("credential", "hunter2xyz!"),  # after "password=" below
    ("private_key", PEM_RSA),
    ("private_key", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg"),  # never ends
    ("payment_card", "4111 1111 1111 1111"),
    ("iban", "GB29 NWBK 6016 1331 9268 19"),
    ("email", "jane.doe@example.com"),
]


def blocking(category: str) -> CompiledGuardrails:
    return compile_policy(GuardrailPolicy(actions={category: Action.BLOCK}))


def with_secret(secret: str, before: str = PROSE[1], after: str = PROSE[2]) -> str:
    label = "password=" if secret == "hunter2xyz!" else "here: "
    return f"{before} {label}{secret}\n{after} {PROSE[3]} {PROSE[0]}"


def assert_nothing_of_the_secret_released(
    category: str, secret: str, text: str, chunks: Sequence[str], step: int = 32
) -> None:
    compiled = blocking(category)
    guard = StreamGuard(compiled, step=step)
    released = "".join(guard.feed(chunk) for chunk in chunks)
    released += guard.finish()
    redacted = apply(compiled, text).text
    placeholder = redacted.index(f"[{category.upper()}]")
    # A prefix of the redacted text that stops before the secret's placeholder.
    assert redacted[: len(released)] == released
    assert len(released) <= placeholder
    assert secret not in released
    assert guard.blocked
    assert guard.verdict.decision is Action.BLOCK
    assert guard.verdict.reason == f"guardrail_blocked:{category}"
    assert category in guard.verdict.categories


@pytest.mark.parametrize(("category", "secret"), BLOCKED_SECRETS, ids=lambda v: v[:20])
def test_block_at_every_split_point(category: str, secret: str) -> None:
    text = with_secret(secret)
    for i in range(len(text) + 1):
        assert_nothing_of_the_secret_released(category, secret, text, [text[:i], text[i:]])


@pytest.mark.parametrize(("category", "secret"), BLOCKED_SECRETS, ids=lambda v: v[:20])
def test_block_one_character_at_a_time(category: str, secret: str) -> None:
    text = with_secret(secret)
    assert_nothing_of_the_secret_released(category, secret, text, list(text), step=1)


@PROPERTY
@given(
    case=st.sampled_from(BLOCKED_SECRETS),
    before=st.lists(st.sampled_from(PROSE), max_size=6).map(" ".join),
    after=st.lists(st.sampled_from(PROSE), max_size=6).map(" ".join),
    data=st.data(),
)
def test_block_with_random_chunkings(
    case: tuple[str, str], before: str, after: str, data: st.DataObject
) -> None:
    category, secret = case
    text = with_secret(secret, before, after)
    cuts = data.draw(st.lists(st.integers(1, len(text) - 1), max_size=60))
    step = data.draw(st.sampled_from([1, 5, 32, 100]))
    assert_nothing_of_the_secret_released(category, secret, text, split(text, cuts), step)


@pytest.mark.parametrize(("category", "secret"), BLOCKED_SECRETS, ids=lambda v: v[:20])
def test_block_is_reported_before_the_stream_ends(category: str, secret: str) -> None:
    """Within hold-back + step characters of the secret's start, not only at finish()."""
    compiled = blocking(category)
    step = 16
    text = with_secret(secret, after=PROSE[1] * 6)
    start = text.index(secret)
    guard = StreamGuard(compiled, step=step)
    fed = 0
    while not guard.blocked and fed < len(text):
        guard.feed(text[fed])
        fed += 1
    assert guard.blocked
    assert fed <= start + compiled.hold_back + step


def test_nothing_is_released_once_blocked() -> None:
    compiled = blocking("credential")
    guard = StreamGuard(compiled, step=1)
    text = f"key {AWS_KEY_ID} " + "x" * 300
    released = "".join(guard.feed(ch) for ch in text)
    assert guard.blocked
    assert guard.feed("more text " * 50) == ""
    assert guard.finish() == ""
    assert released == ""  # the key came before the first release was possible
    assert guard.verdict == Verdict(Action.BLOCK, (("credential", 1),), ("credential",))


def test_block_after_text_was_released_keeps_the_released_prefix() -> None:
    compiled = blocking("payment_card")
    text = PROSE[1] * 5 + " card 4111 1111 1111 1111 end"
    guard = StreamGuard(compiled, step=8)
    released = "".join(guard.feed(ch) for ch in text) + guard.finish()
    assert released
    assert text.startswith(released)
    assert "4111" not in released
    assert guard.blocked


def test_a_blocking_category_that_is_not_found_does_not_block() -> None:
    compiled = blocking("payment_card")
    text = f"{PROSE[0]} jane@example.com {PROSE[1]}"
    assert_same_as_whole(compiled, text, split(text, range(0, len(text), 3)))
    assert released_by(compiled, [text]) == f"{PROSE[0]} [EMAIL] {PROSE[1]}"


# --- latency and bookkeeping -----------------------------------------------------------------


def test_clean_text_trails_the_input_by_at_most_hold_back_plus_step() -> None:
    step = 32
    guard = StreamGuard(REDACT_ALL, step=step)
    text = " ".join(PROSE) * 5
    released = ""
    for fed in range(1, len(text) + 1):
        released += guard.feed(text[fed - 1])
        assert len(released) >= fed - REDACT_ALL.hold_back - step
        assert text.startswith(released)
    assert released + guard.finish() == text


def test_nothing_is_held_when_no_detector_is_enabled() -> None:
    compiled = compile_policy(GuardrailPolicy(enabled=frozenset()))
    guard = StreamGuard(compiled, step=1)
    assert guard.feed("hello ") == "hello "
    assert guard.feed("jane@example.com") == "jane@example.com"
    assert guard.finish() == ""
    assert guard.verdict == Verdict()


def test_a_long_open_ended_finding_is_held_until_it_ends() -> None:
    body = "\n".join(
        "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB" for _ in range(200)
    )
    text = f"key:\n-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\nbye"
    guard = StreamGuard(REDACT_ALL, step=4)
    out = []
    for i in range(0, len(text), 3):
        out.append(guard.feed(text[i : i + 3]))
        assert "MIIE" not in "".join(out)
    out.append(guard.finish())
    assert "".join(out) == "key:\n[PRIVATE_KEY]\nbye"


def test_empty_deltas_and_repeated_finish() -> None:
    guard = StreamGuard(REDACT_ALL)
    assert guard.feed("") == ""
    assert guard.feed("short jane@example.com") == ""
    assert guard.finish() == "short [EMAIL]"
    assert guard.finish() == ""
    assert guard.feed("late") == ""
    assert guard.verdict == Verdict(Action.REDACT, (("email", 1),))


def test_finish_without_input() -> None:
    guard = StreamGuard(REDACT_ALL)
    assert guard.finish() == ""
    assert guard.verdict == Verdict()
    assert not guard.blocked


def test_verdict_so_far_counts_only_what_was_released() -> None:
    guard = StreamGuard(REDACT_ALL, step=1)
    first = "a@example.com " + PROSE[1] * 4
    released = "".join(guard.feed(ch) for ch in first)
    assert released.startswith("[EMAIL] ")
    assert guard.verdict == Verdict(Action.REDACT, (("email", 1),))
    guard.feed(" 4111 1111 1111 1111")
    guard.finish()
    assert guard.verdict == Verdict(Action.REDACT, (("email", 1), ("payment_card", 1)))
