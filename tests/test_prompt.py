"""Tests for promptascent.prompts: rendering, templates, ids and export."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promptascent.errors import ConfigError, TemplateError
from promptascent.llm.types import Message
from promptascent.prompts.export import export_prompt
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.prompts.template import escape_braces, fill, template_fields


def user(text: str) -> Message:
    return Message("user", text)


# ----------------------------------------------------------------------------- rendering


def test_instruction_with_input_placeholder_is_filled() -> None:
    p = Prompt("Translate to French: {input}")
    assert p.fields == ("input",)
    assert p.render({"input": "cat"}) == (user("Translate to French: cat"),)


def test_instruction_without_placeholders_is_followed_by_blank_line_and_input() -> None:
    p = Prompt("Name the opposite animal.")
    assert p.fields == ()
    assert p.render({"input": "cat"}) == (user("Name the opposite animal.\n\ncat"),)


def test_instruction_without_placeholders_lists_named_fields() -> None:
    p = Prompt("Answer the question.")
    rendered = p.render({"question": "Who?", "context": "Bob did it."})
    assert rendered == (user("Answer the question.\n\nquestion: Who?\ncontext: Bob did it."),)


def test_empty_or_blank_instruction_renders_the_input_alone() -> None:
    assert Prompt("").render({"input": "cat"}) == (user("cat"),)
    assert Prompt("  \n").render({"input": "cat"}) == (user("cat"),)


def test_named_fields_are_filled_from_a_dict_input() -> None:
    p = Prompt("Context: {context}\nQuestion: {question}\nAnswer:")
    assert p.fields == ("context", "question")
    assert p.render({"question": "Who?", "context": "Bob did it."}) == (
        user("Context: Bob did it.\nQuestion: Who?\nAnswer:"),
    )


def test_system_message_comes_first() -> None:
    p = Prompt("Q: {input}", system="You are terse.")
    assert p.render({"input": "2+2"}) == (Message("system", "You are terse."), user("Q: 2+2"))


def test_demos_are_user_and_assistant_turns_rendered_with_the_same_template() -> None:
    p = Prompt(
        "Q: {question}",
        system="Be brief.",
        demos=(Demo({"question": "1+1"}, "2"), Demo({"question": "2+3"}, "5")),
    )
    assert p.render({"question": "4+4"}) == (
        Message("system", "Be brief."),
        user("Q: 1+1"),
        Message("assistant", "2"),
        user("Q: 2+3"),
        Message("assistant", "5"),
        user("Q: 4+4"),
    )


def test_text_demo_fills_the_input_field() -> None:
    p = Prompt("Opposite of", demos=(Demo("cat", "dog"),))
    assert p.render({"input": "cow"}) == (
        user("Opposite of\n\ncat"),
        Message("assistant", "dog"),
        user("Opposite of\n\ncow"),
    )


def test_output_format_ends_every_user_turn() -> None:
    p = Prompt("Q: {input}", demos=(Demo("a", "b"),), output_format="Answer yes or no.")
    assert p.render({"input": "c"}) == (
        user("Q: a\n\nAnswer yes or no."),
        Message("assistant", "b"),
        user("Q: c\n\nAnswer yes or no."),
    )
    no_placeholder = Prompt("Is it an animal?", output_format="Answer yes or no.")
    assert no_placeholder.render({"input": "cat"}) == (
        user("Is it an animal?\n\ncat\n\nAnswer yes or no."),
    )


def test_missing_field_names_the_field_and_the_example() -> None:
    p = Prompt("Q: {question}")
    with pytest.raises(TemplateError) as exc:
        p.render({"input": "x"}, where="example train-3")
    msg = str(exc.value)
    assert "{question}" in msg
    assert "(example train-3)" in msg
    assert "fields available: input" in msg


def test_missing_field_in_a_demo_names_the_demo() -> None:
    p = Prompt("Q: {question}", demos=(Demo("no question field", "x"),))
    with pytest.raises(TemplateError, match=r"\{question\}.*\(demo 0\)"):
        p.render({"question": "ok"})


@pytest.mark.parametrize("placeholder", ["{a.b}", "{a[0]}", "{x!r}", "{x:>3}", "{0}", "{}"])
def test_non_plain_placeholders_are_rejected(placeholder: str) -> None:
    template = f"Value: {placeholder}"
    with pytest.raises(TemplateError, match="not a plain field name"):
        template_fields(template)
    with pytest.raises(TemplateError):
        Prompt(template).render({"a": "1", "x": "2", "input": "3"})


def test_malformed_template_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="malformed template"):
        fill("Q: {input", {"input": "x"})


def test_doubled_braces_are_literal_braces() -> None:
    p = Prompt('Reply as JSON {{"answer": ...}} for: {input}')
    assert p.fields == ("input",)
    assert p.render({"input": "cat"}) == (user('Reply as JSON {"answer": ...} for: cat'),)
    no_field = Prompt("Use {{braces}}.")
    assert no_field.render({"input": "x"}) == (user("Use {braces}.\n\nx"),)


def test_field_values_are_inserted_verbatim_not_reparsed() -> None:
    p = Prompt("Q: {input}")
    assert p.render({"input": "{input} {0} {a.b} {{x}}"}) == (user("Q: {input} {0} {a.b} {{x}}"),)


def test_with_instruction_escapes_model_braces_but_keeps_seed_placeholders() -> None:
    seed = Prompt("Q: {input}", system="sys", output_format="fmt", meta={"k": 1})
    child = seed.with_instruction('Answer {input} as JSON {"a": 1} and {other}.')
    assert child.instruction == 'Answer {input} as JSON {{"a": 1}} and {{other}}.'
    assert child.fields == ("input",)
    assert child.system == "sys"
    assert child.output_format == "fmt"
    assert child.meta == {}
    assert child.render({"input": "cat"})[-1] == user(
        'Answer cat as JSON {"a": 1} and {other}.\n\nfmt'
    )


def test_with_instruction_raw_keeps_text_as_template() -> None:
    child = Prompt("Q: {input}").with_instruction("Say {{x}} {input}", raw=True)
    assert child.instruction == "Say {{x}} {input}"


def test_with_instruction_from_a_seed_without_placeholders_escapes_everything() -> None:
    child = Prompt("Plain.").with_instruction("Use {input} here")
    assert child.fields == ()
    assert child.render({"input": "cat"}) == (user("Use {input} here\n\ncat"),)


# ----------------------------------------------------------------------------- ids


def test_id_is_stable_across_equal_instances() -> None:
    a = Prompt("Q: {input}", system="s", demos=(Demo("x", "y"),), output_format="f")
    b = Prompt("Q: {input}", system="s", demos=(Demo("x", "y"),), output_format="f")
    assert a is not b
    assert a.id == b.id
    assert len(a.id) == 12
    assert all(ch in "0123456789abcdef" for ch in a.id)


@pytest.mark.parametrize(
    "changed",
    [
        Prompt("Q: {input}", system="other", demos=(Demo("x", "y"),), output_format="f"),
        Prompt("Q: {input} ", system="s", demos=(Demo("x", "y"),), output_format="f"),
        Prompt("Q: {input}", system="s", demos=(Demo("x", "z"),), output_format="f"),
        Prompt("Q: {input}", system="s", demos=(Demo("w", "y"),), output_format="f"),
        Prompt("Q: {input}", system="s", demos=(), output_format="f"),
        Prompt("Q: {input}", system="s", demos=(Demo("x", "y"),), output_format="g"),
        Prompt("Q: {input}", system=None, demos=(Demo("x", "y"),), output_format="f"),
        Prompt("Q: {input}", system="s", demos=(Demo("x", "y"),), output_format=None),
    ],
    ids=[
        "system",
        "instruction",
        "demo-output",
        "demo-input",
        "no-demos",
        "output_format",
        "no-system",
        "no-output_format",
    ],
)
def test_id_changes_with_every_content_field(changed: Prompt) -> None:
    base = Prompt("Q: {input}", system="s", demos=(Demo("x", "y"),), output_format="f")
    assert changed.id != base.id


def test_id_ignores_meta() -> None:
    assert Prompt("Q: {input}", meta={"origin": "seed"}).id == Prompt("Q: {input}").id
    assert Prompt("Q: {input}", meta={"a": 1}) == Prompt("Q: {input}", meta={"b": 2})


def test_to_dict_from_dict_roundtrip_keeps_id() -> None:
    p = Prompt(
        "Q: {question}",
        system="sys",
        demos=(Demo({"question": "1+1"}, "2"), Demo({"question": "2+2"}, "4")),
        output_format="A number.",
        meta={"ignored": True},
    )
    d = p.to_dict()
    assert d == {
        "id": p.id,
        "system": "sys",
        "instruction": "Q: {question}",
        "demos": [
            {"input": {"question": "1+1"}, "output": "2"},
            {"input": {"question": "2+2"}, "output": "4"},
        ],
        "output_format": "A number.",
    }
    back = Prompt.from_dict(json.loads(json.dumps(d)))
    assert back == p
    assert back.id == p.id


# ----------------------------------------------------------------------------- export


def test_export_text_is_the_user_turn_with_placeholder() -> None:
    p = Prompt("Name the opposite animal.", output_format="One word.")
    assert export_prompt(p, "text") == "Name the opposite animal.\n\n{input}\n\nOne word."
    assert export_prompt(Prompt("Q: {input}\nA:"), "text") == "Q: {input}\nA:"
    assert export_prompt(Prompt("C: {context} Q: {question}"), "text") == (
        "C: {context} Q: {question}"
    )


@pytest.mark.parametrize(
    "prompt",
    [Prompt("Q: {input}", system="sys"), Prompt("Q: {input}", demos=(Demo("a", "b"),))],
    ids=["system", "demos"],
)
def test_export_text_refuses_system_or_demos(prompt: Prompt) -> None:
    with pytest.raises(ConfigError, match="messages"):
        export_prompt(prompt, "text")


def test_export_messages_is_the_rendered_chat_with_placeholder() -> None:
    p = Prompt("Q: {input}", system="sys", demos=(Demo("a", "b"),), output_format="fmt")
    exported = json.loads(export_prompt(p, "messages"))
    assert exported == [m.to_dict() for m in p.render({"input": "{input}"})]
    assert exported == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Q: a\n\nfmt"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "Q: {input}\n\nfmt"},
    ]


def test_export_json_roundtrips_to_the_same_id() -> None:
    p = Prompt("Q: {input}", system="sys", demos=(Demo("a", "b"),), output_format="fmt")
    d = json.loads(export_prompt(p, "json"))
    assert d["id"] == p.id
    assert Prompt.from_dict(d).id == p.id


def test_export_unknown_format() -> None:
    with pytest.raises(ConfigError, match="unknown export format 'yaml'"):
        export_prompt(Prompt("Q: {input}"), "yaml")


# ----------------------------------------------------------------------------- properties


@given(st.text())
def test_any_input_value_renders_verbatim(value: str) -> None:
    rendered = Prompt("Q: {input}\nA:").render({"input": value})
    assert rendered[-1] == user(f"Q: {value}\nA:")


@given(st.text())
def test_escaped_text_renders_exactly(text: str) -> None:
    instruction = escape_braces(text)
    assert template_fields(instruction) == ()
    assert fill(instruction, {}) == text
    expected = f"{text}\n\nx" if text.strip() else "x"
    assert Prompt(instruction).render({"input": "x"}) == (user(expected),)


@given(st.text())
def test_with_instruction_never_yields_a_broken_template(text: str) -> None:
    child = Prompt("Q: {input}").with_instruction(text)
    assert set(child.fields) <= {"input"}
    child.render({"input": "x"})
