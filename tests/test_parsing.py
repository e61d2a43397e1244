"""Tests for promptascent.optimizers.parsing: reading an instruction from a model reply."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptascent.optimizers.parsing import Parsed, extract_tagged, parse_instruction

WANT = "Answer with the opposite animal."


def accepted(text: str) -> Parsed:
    return Parsed(text)


def rejected(reason: str) -> Parsed:
    return Parsed(None, reason)


# ----------------------------------------------------------------------------- tags


def test_closed_tag() -> None:
    reply = f"Let me think.\n<prompt>{WANT}</prompt>\nHope that helps."
    assert parse_instruction(reply) == accepted(WANT)


def test_unclosed_tag_runs_to_the_end() -> None:
    assert parse_instruction(f"<prompt> {WANT}\n") == accepted(WANT)


def test_tag_is_case_insensitive() -> None:
    assert parse_instruction(f"<PROMPT>{WANT}</Prompt>") == accepted(WANT)


def test_custom_tag() -> None:
    assert parse_instruction(f"<instruction>{WANT}</instruction>", tag="instruction") == (
        accepted(WANT)
    )


def test_tagged_text_keeps_its_blank_lines() -> None:
    reply = "<prompt>Read the input.\n\nAnswer with one word.</prompt>"
    assert parse_instruction(reply) == accepted("Read the input.\n\nAnswer with one word.")


def test_extract_tagged_without_tag_is_none() -> None:
    assert extract_tagged("no tags here", "prompt") is None
    assert extract_tagged("a <prompt> x </prompt> b <prompt> y </prompt>", "prompt") == "x"


# ----------------------------------------------------------------------------- untagged replies


@pytest.mark.parametrize(
    "reply",
    [
        WANT,
        f"Sure! Here is the new instruction: {WANT}",
        f"Sure! Here is the new instruction:\n{WANT}",
        f"Instruction: {WANT}",
        f"Okay, the improved prompt: {WANT}",
        "The instruction was to answer with the opposite animal.",
        f"Here's the prompt:\n\n{WANT}",
    ],
)
def test_preambles_are_stripped(reply: str) -> None:
    assert parse_instruction(reply) == accepted(WANT)


def test_first_letter_is_capitalised() -> None:
    assert parse_instruction("answer with the opposite animal.") == accepted(WANT)


@pytest.mark.parametrize(
    "reply",
    [f"```\n{WANT}\n```", f"```text\n{WANT}\n```"],
    ids=["plain", "language"],
)
def test_markdown_code_fence_is_stripped(reply: str) -> None:
    assert parse_instruction(reply) == accepted(WANT)


def test_code_fence_after_a_preamble_is_stripped() -> None:
    assert parse_instruction(f"Here is the instruction:\n```\n{WANT}\n```") == accepted(WANT)


@pytest.mark.parametrize("quote", ['"', "'", "`"])
def test_surrounding_quotes_are_stripped(quote: str) -> None:
    assert parse_instruction(f"{quote}{WANT}{quote}") == accepted(WANT)
    assert parse_instruction(f"Instruction: {quote}{WANT}{quote}") == accepted(WANT)


def test_inner_quotes_are_kept() -> None:
    text = 'Answer "yes" or "no" only.'
    assert parse_instruction(text) == accepted(text)


def test_reply_running_on_after_a_blank_line_keeps_the_first_block() -> None:
    reply = f"{WANT}\n\nThis instruction works because every animal has a pair."
    assert parse_instruction(reply) == accepted(WANT)
    chatty = f'Sure, here is the improved prompt:\n\n"{WANT}"\n\nI hope this helps!'
    assert parse_instruction(chatty) == accepted(WANT)


def test_runs_of_spaces_are_collapsed_but_newlines_kept() -> None:
    assert parse_instruction("Read   the\tinput.\nThen answer.") == accepted(
        "Read the input.\nThen answer."
    )


def test_words_that_start_like_a_preamble_are_kept() -> None:
    text = "Surely every animal has an opposite; name it."
    assert parse_instruction(text) == accepted(text)


# ----------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("reply", ["", "   \n\t ", "<prompt></prompt>", "<prompt>  \n</prompt>"])
def test_empty_reply_is_rejected(reply: str) -> None:
    assert parse_instruction(reply) == rejected("empty")


def test_too_short_and_too_long() -> None:
    assert parse_instruction("Do it.") == rejected("too short")
    assert parse_instruction("Do it.", min_chars=6) == accepted("Do it.")
    assert parse_instruction(WANT, max_chars=len(WANT) - 1) == rejected("too long")
    assert parse_instruction(WANT, max_chars=len(WANT)) == accepted(WANT)


@pytest.mark.parametrize(
    "reply",
    [
        WANT,
        "answer with the opposite animal",
        "ANSWER WITH THE OPPOSITE ANIMAL!!",
        "<prompt>Answer  with the opposite-animal.</prompt>",
    ],
)
def test_repeating_a_forbidden_text_is_rejected(reply: str) -> None:
    assert parse_instruction(reply, forbidden=("Other text.", WANT)) == rejected(
        "repeats the parent"
    )


def test_a_different_text_is_not_forbidden() -> None:
    text = "Answer with the opposite animal, in one word."
    assert parse_instruction(text, forbidden=(WANT,)) == accepted(text)


@pytest.mark.parametrize(
    "reply",
    [
        "<prompt>Use <input> to answer.</prompt>",
        "Rewrite the <instruction> so it is clearer.",
        "Answer with the opposite animal. </prompt>",
        "<prompt>Answer with the opposite animal. <prompt> again</prompt>",
    ],
)
def test_reply_with_template_tags_is_rejected(reply: str) -> None:
    assert parse_instruction(reply) == rejected("contains template tags")


def test_upper_case_template_tags_are_rejected() -> None:
    assert parse_instruction("Rewrite <INPUT> as the opposite animal.") == rejected(
        "contains template tags"
    )


# ----------------------------------------------------------------------------- properties


@given(st.text(), st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=80))
def test_parse_never_raises_and_accepted_text_is_within_limits(
    reply: str, min_chars: int, extra: int
) -> None:
    max_chars = min_chars + extra
    parsed = parse_instruction(reply, min_chars=min_chars, max_chars=max_chars)
    if parsed.text is None:
        assert parsed.reason in {
            "empty",
            "too short",
            "too long",
            "repeats the parent",
            "contains template tags",
        }
    else:
        assert parsed.reason == ""
        assert parsed.text.strip()
        assert min_chars <= len(parsed.text) <= max_chars


@given(st.text())
def test_parse_with_tags_and_forbidden_never_raises(body: str) -> None:
    parsed = parse_instruction(f"<prompt>{body}</prompt>", forbidden=(body,))
    assert parsed.text is None or (0 < len(parsed.text) <= 2000)
