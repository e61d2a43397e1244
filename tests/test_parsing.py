"""Tests for promptascent.optimizers.parsing: reading an instruction from a model reply."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptascent.optimizers.base import load_template
from promptascent.optimizers.parsing import (
    Parsed,
    echoes_meta_prompt,
    extract_tagged,
    parse_instruction,
)

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
            "echoes the meta-prompt",
        }
    else:
        assert parsed.reason == ""
        assert parsed.text.strip()
        assert min_chars <= len(parsed.text) <= max_chars


@given(st.text())
def test_parse_with_tags_and_forbidden_never_raises(body: str) -> None:
    parsed = parse_instruction(f"<prompt>{body}</prompt>", forbidden=(body,))
    assert parsed.text is None or (0 < len(parsed.text) <= 2000)


# ----------------------------------------------------------------------------- meta-prompt echoes

# Replies of the embedded model to PromptAgent's rewrite meta-prompt (BENCHMARKS 4.1,
# navigate, seed 1): each restates the meta-prompt and scored 0 on every example.
RESTATEMENTS = [
    "To fix the problems and build on the previous instructions, you could start by "
    "rewriting each instruction so that it does not have a circular reasoning error.",
    "How to fix the problems and build on the instructions so far",
    "The instructions so far, each revised from the one before them (the last is the current one).",
]


@pytest.mark.parametrize("text", RESTATEMENTS)
def test_a_restatement_of_the_meta_prompt_is_rejected(text: str) -> None:
    assert parse_instruction(f"<prompt>{text}</prompt>") == rejected("echoes the meta-prompt")


def test_the_check_reads_the_templates_own_text() -> None:
    # the rewrite template's last sentence, a placeholder cut out
    assert "build on the instructions so far" in load_template("promptagent_rewrite.txt")
    assert echoes_meta_prompt("Then write them that fix the problems and build on it.")
    # five words of it are not enough; the placeholders' content is not the template's
    assert not echoes_meta_prompt("Fix the problems and build.")
    assert not echoes_meta_prompt("Determine whether the sentence is plausible. Say yes or no.")


def test_a_phrase_the_parent_already_had_is_allowed() -> None:
    parent = "Follow the instruction step by step to generate a better answer."
    child = "Read the question. Follow the instruction step by step to generate a better answer."
    assert echoes_meta_prompt(child)
    assert parse_instruction(f"<prompt>{child}</prompt>", forbidden=(parent,)) == accepted(child)


def test_promptwizard_thinking_styles_may_be_woven_in() -> None:
    style = load_template("promptwizard_styles.txt").splitlines()[0].strip()
    assert len(style.split()) >= 6
    text = f"Decide if the sentence is plausible. {style}"
    assert parse_instruction(f"<prompt>{text}</prompt>") == accepted(text)
