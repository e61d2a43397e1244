"""A prompt in other tools' formats: promptfoo, LangChain, DSPy and prompt registries.

Each format has its own template syntax, and ours is `str.format`'s: `{field}` is a
placeholder and `{{`/`}}` are literal braces. So a prompt is first rendered into
segments, literal text and field names (`chat_segments`), and each format then writes
the literal text with its own escaping and the fields with its own placeholders. No
format carries model settings, base URLs or keys: only the prompt (and, for promptfoo,
the test examples).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from promptascent.errors import ConfigError
from promptascent.prompts.prompt import Prompt

_SENTINEL = "\x00pa-field-{}\x00"
_SPLIT = re.compile("\x00pa-field-(\\d+)\x00")


@dataclass(frozen=True)
class Field:
    """A placeholder in a rendered message: the example's field `name`."""

    name: str


Segment = str | Field


def prompt_fields(prompt: Prompt) -> tuple[str, ...]:
    """The fields a prompt is filled from (`input` when its instruction names none)."""
    return prompt.fields or ("input",)


def chat_segments(prompt: Prompt) -> list[tuple[str, list[Segment]]]:
    """The rendered chat, each message as (role, literal text and fields in order).
    Literal text is what the model reads (our `{{` already a single brace)."""
    names = prompt_fields(prompt)
    sentinels = {n: _SENTINEL.format(i) for i, n in enumerate(names)}
    out: list[tuple[str, list[Segment]]] = []
    for m in prompt.render(sentinels):
        parts = _SPLIT.split(m.content)
        segs: list[Segment] = []
        for i, part in enumerate(parts):
            if i % 2:
                segs.append(Field(names[int(part)]))
            elif part:
                segs.append(part)
        out.append((m.role, segs))
    return out


def example_fields(prompt: Prompt, value: str | dict[str, str]) -> dict[str, str]:
    """An example's (or demo's) input as the prompt's fields: text input fills the
    prompt's one field whatever its name."""
    names = prompt_fields(prompt)
    if isinstance(value, dict):
        return {n: value.get(n, "") for n in names} if set(names) <= set(value) else dict(value)
    if len(names) != 1:
        raise ConfigError(
            f"the prompt has fields {', '.join(names)} but an example is plain text; "
            "the task's data must give each field"
        )
    return {names[0]: value}


# ----------------------------------------------------------------------------- registry

# MLflow's prompt registry reads `{{ name }}` (a name, or dotted names) as a variable
# (mlflow/prompt/constants.py, PROMPT_TEMPLATE_VARIABLE_PATTERN); Langfuse's compile
# reads from a `{{` to the next `}}` as one variable (left as written when it names
# none, hiding a placeholder inside). Neither has an escape for a literal `{{`. The
# export refuses any
# `{{ ... }}` in literal text (a superset of both, and of older MLflow's `.*?`), so no
# registry finds a variable the export did not write.
_REGISTRY_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
_ANY_DOUBLE_BRACES = re.compile(r"\{\{.*?\}\}", re.DOTALL)


def _registry_text(segs: list[Segment]) -> str:
    out, spans = "", set()
    for s in segs:
        if isinstance(s, Field):
            spans.add((len(out), len(out) + len(s.name) + 4))
            out += "{{" + s.name + "}}"
        else:
            out += s
    for m in _ANY_DOUBLE_BRACES.finditer(out):
        if (m.start(), m.end()) not in spans:
            raise ConfigError(
                f"the prompt's literal text {m.group(0)!r} would be read as a variable by "
                "MLflow's and Langfuse's prompt registries, which have no escape for `{{`; "
                "use --format messages or langchain"
            )
    return out


def to_registry(prompt: Prompt) -> dict[str, Any]:
    """`{"type": "text" | "chat", "prompt": ...}` with `{{field}}` placeholders: the
    arguments of Langfuse's `create_prompt(name=..., type=..., prompt=...)` and the
    `template` of MLflow's `register_prompt`. Literal braces are written as single
    braces; text that a registry would misread as a variable is an error."""
    chat = chat_segments(prompt)
    if len(chat) == 1 and chat[0][0] == "user":
        return {"type": "text", "prompt": _registry_text(chat[0][1])}
    return {
        "type": "chat",
        "prompt": [{"role": role, "content": _registry_text(segs)} for role, segs in chat],
    }


def registry_to_template(text: str) -> str:
    """A registry template (`{{field}}` placeholders, literal single braces) as our
    instruction template (`{field}`, literal braces doubled): the inverse of the
    registry export for one text."""
    out, pos = [], 0
    for m in _REGISTRY_VAR.finditer(text):
        out.append(text[pos : m.start()].replace("{", "{{").replace("}", "}}"))
        out.append("{" + m.group(1) + "}")
        pos = m.end()
    out.append(text[pos:].replace("{", "{{").replace("}", "}}"))
    return "".join(out)


# ----------------------------------------------------------------------------- LangChain

_LC_ROLES = {
    "system": "SystemMessagePromptTemplate",
    "user": "HumanMessagePromptTemplate",
    "assistant": "AIMessagePromptTemplate",
}


def _lc(id_: list[str], kwargs: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"lc": 1, "type": "constructor", "id": id_, "kwargs": kwargs}
    if name:
        d["name"] = name
    return d


def to_langchain(prompt: Prompt) -> dict[str, Any]:
    """A `ChatPromptTemplate` as langchain-core's `dumpd` writes it ("lc": 1): one
    f-string message template per message (demos as fixed human/AI pairs), literal
    braces doubled, `{field}` for each field; `langchain_core.load.load` reads it."""
    messages: list[dict[str, Any]] = []
    all_vars: list[str] = []
    for role, segs in chat_segments(prompt):
        template, names = "", []
        for s in segs:
            if isinstance(s, Field):
                template += "{" + s.name + "}"
                names.append(s.name)
            else:
                template += s.replace("{", "{{").replace("}", "}}")
        names = sorted(set(names))
        all_vars.extend(n for n in names if n not in all_vars)
        inner = _lc(
            ["langchain", "prompts", "prompt", "PromptTemplate"],
            {"input_variables": names, "template": template, "template_format": "f-string"},
            "PromptTemplate",
        )
        messages.append(_lc(["langchain", "prompts", "chat", _LC_ROLES[role]], {"prompt": inner}))
    return _lc(
        ["langchain", "prompts", "chat", "ChatPromptTemplate"],
        {"input_variables": sorted(all_vars), "messages": messages},
        "ChatPromptTemplate",
    )


# ----------------------------------------------------------------------------- DSPy

DSPY_OUTPUT_FIELD = "output"


def to_dspy(prompt: Prompt) -> dict[str, Any]:
    """What `dspy.Predict("<fields> -> output").dump_state()` holds for this prompt:
    the signature's instructions (system text, instruction with each placeholder as
    the field's name in backticks, output format) and the demos by field name. DSPy
    lays the fields out itself, so the text the model reads differs from ours."""
    names = prompt_fields(prompt)
    parts: list[str] = [prompt.system] if prompt.system else []
    placeholders = {n: f"`{n}`" for n in names}
    instruction = (
        prompt.instruction.format_map(placeholders)
        if prompt.fields
        else (prompt.instruction.format_map({}))
    )
    parts.append(instruction)
    if prompt.output_format:
        parts.append(prompt.output_format)
    fields = [{"prefix": _dspy_prefix(n), "description": "${" + n + "}"} for n in names]
    fields.append({"prefix": "Output:", "description": "${" + DSPY_OUTPUT_FIELD + "}"})
    demos = [{**example_fields(prompt, d.input), DSPY_OUTPUT_FIELD: d.output} for d in prompt.demos]
    return {
        "traces": [],
        "train": [],
        "demos": demos,
        "signature": {
            "instructions": "\n\n".join(p for p in parts if p.strip()),
            "fields": fields,
        },
        "lm": None,
    }


def _dspy_prefix(name: str) -> str:
    """DSPy's default prefix for a field: `question_text` -> "Question Text:"."""
    return " ".join(w.capitalize() for w in name.split("_") if w) + ":"


# ----------------------------------------------------------------------------- promptfoo

# Nunjucks (promptfoo's templates) starts a tag at `{{`, `{%` and `{#`, and a `#}` outside
# a comment is an error ("unexpected end of comment").
_NUNJUCKS_SPECIAL = re.compile(r"\{(?=[{%#])|#(?=\})")
_NUNJUCKS_SPECIAL_BEFORE_FIELD = re.compile(r"\{(?=[{%#])|#(?=\})|\{$")


def _nunjucks_literal(m: re.Match[str]) -> str:
    return "{{ '" + m.group(0) + "' }}"


def _nunjucks_text(segs: list[Segment]) -> str:
    out = ""
    for i, s in enumerate(segs):
        if isinstance(s, Field):
            out += "{{" + s.name + "}}"
            continue
        before_field = i + 1 < len(segs) and isinstance(segs[i + 1], Field)
        pattern = _NUNJUCKS_SPECIAL_BEFORE_FIELD if before_field else _NUNJUCKS_SPECIAL
        out += pattern.sub(_nunjucks_literal, s)
    return out


@dataclass(frozen=True)
class PromptfooTest:
    """One test case: the example's fields, its accepted answers and its id."""

    id: str
    fields: dict[str, str]
    targets: tuple[str, ...]


# How a metric maps to a promptfoo assertion (None: no assertion maps).
_ASSERTIONS = {
    "exact_match": "equals",
    "choice_accuracy": "equals",
    "contains": "icontains",
}


def _assertion_value(value: str) -> str:
    """An answer as promptfoo reads an assertion's value: a Nunjucks template, and a
    file or package reference when it starts with `file://` or `package:`."""
    if value.startswith(("file://", "package:")):
        return "{{ '" + value[0] + "' }}" + _nunjucks_text([value[1:]])
    return _nunjucks_text([value]) if value else value


def _assertion(kind: str, answers: tuple[str, ...]) -> dict[str, Any]:
    """One assertion that passes when any accepted answer does."""
    targets = tuple(_assertion_value(a) for a in answers)
    if len(targets) == 1:
        return {"type": kind, "value": targets[0]}
    if kind == "icontains":
        return {"type": "icontains-any", "value": list(targets)}
    # assert-set passes when this share of its assertions pass: any one of them
    return {
        "type": "assert-set",
        "threshold": 1 / len(targets),
        "assert": [{"type": kind, "value": v} for v in targets],
    }


def metric_name(metric: str | dict[str, Any] | None) -> str | None:
    """The name of a metric spec as a task file gives it (None: not known)."""
    if isinstance(metric, dict):
        return str(metric.get("name", "")) or None
    return metric


def to_promptfoo(
    prompt: Prompt,
    tests: list[PromptfooTest],
    *,
    metric: str | dict[str, Any] | None,
    description: str,
    split: str,
) -> str:
    """A promptfooconfig.yaml: the prompt as promptfoo's JSON chat prompt with
    `{{field}}` variables (a literal `{` before `{`, `%`, `#` or a field written as
    `{{ '{' }}`, a `#` before `}` as `{{ '#' }}`),
    the `split` examples as tests, and the metric as an assertion where one maps."""
    chat = [{"role": role, "content": _nunjucks_text(segs)} for role, segs in chat_segments(prompt)]
    name = metric_name(metric)
    kind = _ASSERTIONS.get(name) if name else None
    yaml_tests = []
    for t in tests:
        for field, value in t.fields.items():
            if value.startswith("file://"):
                raise ConfigError(
                    f"example {t.id}: field {field!r} starts with 'file://', which promptfoo "
                    "would read as a file to load; the promptfoo export cannot carry it"
                )
        case: dict[str, Any] = {"description": t.id, "vars": t.fields}
        if kind and t.targets:
            case["assert"] = [_assertion(kind, t.targets)]
        yaml_tests.append(case)
    config = {
        "description": description,
        "prompts": [{"raw": json.dumps(chat, ensure_ascii=False), "label": prompt.id}],
        "providers": ["echo"],
        "tests": yaml_tests,
    }
    if name is None:
        note = (
            "# The run's metric is not known (its task data could not be read again), so "
            "the tests carry no assertions.\n"
        )
    elif kind is None:
        note = (
            f"# The metric {name!r} has no promptfoo assertion that means the same, so the "
            "tests carry no assertions;\n# add your own (llm-rubric, javascript, ...).\n"
        )
    else:
        note = (
            f"# The metric {name!r} is written as promptfoo's {kind!r} assertion; "
            "promptascent also normalises\n# case, whitespace and punctuation before "
            "comparing, so promptfoo may be stricter.\n"
        )
    header = (
        f"# promptfoo config exported by promptascent: prompt {prompt.id}, the task's "
        f"{split} split as tests.\n"
        "# providers: 'echo' is a placeholder; put the model you use here "
        "(e.g. openai:chat:gpt-4o-mini).\n" + note
    )
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
