"""Intent analysis: a one-sentence task description becomes a task draft.

The optimizer model is asked for a few "key: value" lines (templates/intent.txt).
Small models break that form, so the reply is read tolerantly and every field is
then checked and repaired by rules that need no model: labels named in the
description win over the model's; a task is classification iff it has a label set
of 2..20; the metric follows the task type; the seed prompt falls back to the
description. Every repair is recorded in `TaskDraft.notes`. A model that fails or
answers garbage every time leaves a draft made by the rules alone, and says so.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import yaml

from promptascent.config.task import ModelsSpec, task_from_dict
from promptascent.data.example import Example
from promptascent.errors import BudgetExhausted, ConfigError, ModelError, ModelUnavailable
from promptascent.llm.client import ModelClient
from promptascent.llm.types import CompletionRequest, Message
from promptascent.optimizers.parsing import parse_instruction
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.template import escape_braces, fill

TaskType = Literal["classification", "generation", "extraction", "qa"]
TASK_TYPES: tuple[TaskType, ...] = ("classification", "generation", "extraction", "qa")

MAX_DESCRIPTION_CHARS = 2000
MIN_LABELS, MAX_LABELS = 2, 20
_MAX_LABEL_WORDS, _MAX_LABEL_CHARS = 4, 40


def load_template(name: str) -> str:
    """A prompt template from describe/templates/."""
    return (resources.files("promptascent.describe") / "templates" / name).read_text("utf-8")


@dataclass(frozen=True)
class TaskDraft:
    """A task config drafted from a description; `notes` says what was repaired and
    why. `metric` is a metric spec (a name or a mapping, as in a task file)."""

    name: str
    description: str
    task_type: TaskType
    labels: tuple[str, ...]
    input_kind: str
    output_format: str
    metric: str | dict[str, Any]
    seed_prompt: str
    notes: tuple[str, ...] = ()
    from_model: bool = True  # False: the model gave nothing usable, rules made it all

    @property
    def classification(self) -> bool:
        return self.task_type == "classification"

    @property
    def answer_format(self) -> str | None:
        """The line naming the allowed answers (classification only)."""
        return _answer_format(self.labels) if self.labels else None

    def to_task_dict(
        self,
        data: dict[str, Any],
        *,
        models: ModelsSpec | None = None,
        budget: dict[str, float] | None = None,
        optimizer: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """The task file mapping (what `task_from_dict` validates)."""
        seed_prompt: str | dict[str, Any] = self.seed_prompt
        if self.answer_format:
            seed_prompt = {"instruction": self.seed_prompt, "output_format": self.answer_format}
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "data": data,
            "seed_prompt": seed_prompt,
            "metric": self.metric,
        }
        if models is not None:
            given = models.model_dump(mode="json", exclude_defaults=True)
            if given:
                out["models"] = given
        if budget:
            out["budget"] = dict(budget)
        if optimizer:
            out["optimizer"] = dict(optimizer)
        out["seed"] = seed
        return out

    def to_yaml(
        self,
        data: dict[str, Any],
        *,
        models: ModelsSpec | None = None,
        budget: dict[str, float] | None = None,
        optimizer: dict[str, Any] | None = None,
        optimizer_reason: str = "",
        seed: int = 0,
        header: tuple[str, ...] = (),
    ) -> str:
        """An editable task file, with comments saying where each part came from.
        `load_task` accepts it (checked before it is returned)."""
        mapping = self.to_task_dict(
            data, models=models, budget=budget, optimizer=optimizer, seed=seed
        )
        task_from_dict(mapping, source="drafted task")  # raises on a bad draft, never writes one
        comments = {
            "name": [
                f"task type: {self.task_type}"
                + (f"; labels: {', '.join(self.labels)}" if self.labels else "; no label set"),
                f"one input is: {self.input_kind}; the output is: {self.output_format}",
            ],
            "data": ["synthetic examples (promptascent synth): read and edit them freely"],
            "seed_prompt": ["the instruction to start from; the optimizer searches from here"],
            "metric": [
                "choice_accuracy: the answer must name the right label"
                if self.classification
                else "judge: the judge model rates each output against the rubric"
            ],
            "optimizer": [f"chosen: {optimizer_reason}"] if optimizer_reason else [],
        }
        lines = [f"# {_one_line(h)}" for h in header]
        lines.append("# Drafted by promptascent from a task description (intent analysis).")
        if not self.from_model:
            lines.append("# The optimizer model gave no usable draft: rules made this one.")
        if self.notes:
            lines.append("# Repairs:")
            lines += [f"#   - {_one_line(n)}" for n in self.notes]
        for key, value in mapping.items():
            lines += [f"# {_one_line(c)}" for c in comments.get(key, [])]
            dumped = yaml.safe_dump(
                {key: value}, sort_keys=False, allow_unicode=True, width=100
            ).rstrip("\n")
            lines.append(dumped)
        return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def check_description(description: str) -> str:
    """The description, stripped; ConfigError when it is empty or too long."""
    if not isinstance(description, str) or not description.strip():
        raise ConfigError(
            "description: empty; say what the task is, e.g. "
            '"Classify support tickets by urgency: low, medium or high"'
        )
    text = " ".join(description.split())
    if len(text) > MAX_DESCRIPTION_CHARS:
        raise ConfigError(
            f"description: {len(text)} characters; keep it under {MAX_DESCRIPTION_CHARS} "
            "(a sentence or two saying what the task is)"
        )
    return text


# --------------------------------------------------------------------------- labels

_CLASSIFY_VERBS = re.compile(
    r"\b(classif\w*|categori[sz]\w*|label\w*|tag|tags|sort|triage\w*|detect\w*|decide\w*|"
    r"determin\w*|predict\w*|identif\w*|tell|assign\w*|flag\w*|judge\w*|rate|rates|grade\w*|"
    r"whether|is it|answer with)\b",
    re.IGNORECASE,
)
# Words after which a list of labels starts. Strong cues need no classification verb.
_STRONG_CUES = re.compile(
    r"\b(?:one of|either)\b\s*:?|\b(?:labels?|categories|classes|options)\s*:|"
    r"\bwhether\b(?:\s+\S+){0,8}?\s+(?:is|are|was|were|sounds?|seems?|looks?|means?|feels?)\b",
    re.IGNORECASE,
)
_WEAK_CUES = re.compile(r":|\b(?:as|into|between|is it|answer with)\b", re.IGNORECASE)
# Where a list of labels ends.
_LIST_END = re.compile(
    r"[.;?!()\[\]\n]|\s[-–—]\s|\b(?:based on|according to|depending on|given|for|from|"
    r"with|by|if|when|so that|because|using|in|of|to|that|which)\b",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"\s*(?:[,;]\s*(?:or|and)?\s*|\s+or\s+|\s+and\s+|\s*/\s*|\s*\|\s*|\n+)\s*")
_QUOTES = "\"'`“”‘’«»"
_ARTICLE = re.compile(r"^(?:either|a|an|the)\s+", re.IGNORECASE)
_NOT_LABELS = {"none", "n/a", "na", "nothing", "free text", "text", "-", "null", "no labels"}


def split_labels(text: str) -> tuple[str, ...] | None:
    """The labels of a list like "low, medium or high", "yes/no", "'spam' or 'not
    spam'"; None when it is not a list of 2..20 short, distinct labels."""
    text = text.strip().strip(":").strip()
    if not text or not re.search(r"[,;/|\n]|\bor\b|\band\b", text, re.IGNORECASE):
        return None
    items: list[str] = []
    for raw in _SEPARATORS.split(text):
        item = _ARTICLE.sub("", raw.strip().strip(_QUOTES + ".:*").strip()).strip(_QUOTES)
        if not item:
            continue
        if len(item.split()) > _MAX_LABEL_WORDS or len(item) > _MAX_LABEL_CHARS:
            return None
        if item.casefold() in _NOT_LABELS:
            return None
        items.append(item)
    unique = tuple(dict.fromkeys(items))
    if len({i.casefold() for i in unique}) != len(unique):
        return None
    return unique if MIN_LABELS <= len(unique) <= MAX_LABELS else None


_CONDITIONAL = re.compile(
    r"\b(?:answer|say|output|reply|respond|return|label it)(?:\s+with)?\s+[\"'`]?"
    r"(?!(?:the|a|an|it|that|this)\b)(\w+)[\"'`]?"
    r"\s+(?:if|when|whenever)\b[^.;]*?(?:\b(?:otherwise|else)\b\s*,?\s*[\"'`]?(\w+)"
    r"|\band\s+[\"'`]?(\w+)[\"'`]?\s+(?:otherwise|if not)\b)",
    re.IGNORECASE,
)


def labels_from_description(description: str) -> tuple[str, ...]:
    """The label set a description names, or () when it names none. Read by rules:
    a list after a cue ("by urgency: low, medium or high", "as positive or negative",
    "one of A, B, C", "whether it is X or Y"), a parenthesised list ("(yes, no)"), or a
    slash list ("yes/no"). Weak cues (a colon, "as", "into") count only in a
    description that asks to classify, so "Rewrite it as formal or casual English"
    names no labels."""
    classifying = bool(_CLASSIFY_VERBS.search(description))
    starts: list[int] = [m.end() for m in _STRONG_CUES.finditer(description)]
    if classifying:
        starts += [m.end() for m in _WEAK_CUES.finditer(description)]
    for start in sorted(starts):
        rest = description[start:]
        end = _LIST_END.search(rest.lstrip(" :"))
        offset = len(rest) - len(rest.lstrip(" :"))
        segment = rest[: offset + end.start()] if end else rest
        found = split_labels(segment)
        if found:
            return found
    for m in re.finditer(r"\(([^()]{3,200})\)", description):
        found = split_labels(m.group(1))
        if found and all(len(x.split()) <= 2 for x in found):
            return found
    if classifying:
        slash = re.search(r"(?<![\w/])(\w+(?:/\w+)+)(?![\w/])", description)
        if slash and slash.group(1).casefold() not in ("and/or", "input/output"):
            found = split_labels(slash.group(1))
            if found:
                return found
    # "answer True if ..., otherwise False", "say yes when ... and no otherwise"
    conditional = _CONDITIONAL.search(description)
    if conditional:
        first, second = conditional.group(1), conditional.group(2) or conditional.group(3)
        if first.casefold() != second.casefold():
            return (first, second)
    # A question "Is the statement true or false?": the two words around " or ".
    if classifying or re.match(r"\s*(?:is|are|does|do|did|can|was|were|will)\b", description, re.I):
        pair = re.search(r"\b(\w+) or (\w+)\s*[?.!]?\s*$", description)
        if pair and pair.group(1).casefold() != pair.group(2).casefold():
            return (pair.group(1), pair.group(2))
    return ()


# --------------------------------------------------------------------------- the reply

_KEYS = {
    "name": "name",
    "task name": "name",
    "title": "name",
    "type": "type",
    "task type": "type",
    "kind": "type",
    "category": "type",
    "labels": "labels",
    "label": "labels",
    "label set": "labels",
    "classes": "labels",
    "categories": "labels",
    "answers": "labels",
    "possible answers": "labels",
    "options": "labels",
    "choices": "labels",
    "input": "input",
    "inputs": "input",
    "input type": "input",
    "output": "output",
    "output format": "output",
    "format": "output",
    "prompt": "prompt",
    "seed prompt": "prompt",
    "instruction": "prompt",
    "instructions": "prompt",
    "system prompt": "prompt",
}
_LINE = re.compile(
    r"^\s*(?:[-*•>]+|\d+[.)])?\s*[*_`]*\s*([A-Za-z][A-Za-z _-]{0,20}?)\s*[*_`]*\s*[:=]"
    r"\s*[*_`]*\s*(.*?)\s*$"
)
# The template's own explanations: a reply that repeats one gave no value.
_TEMPLATE_VALUES = {
    "a short name for the task",
    "classification, generation, extraction or qa",
    "the possible answers, separated by commas, or none",
    "what one input is, in a few words",
    "what the answer looks like, in a few words",
    "one instruction that tells a model how to do the task",
}


def parse_intent_reply(reply: str) -> dict[str, str]:
    """The fields a reply gives ("name", "type", "labels", "input", "output",
    "prompt"), read tolerantly: a JSON object anywhere in it, or "key: value" lines
    with bullets, numbering, markdown emphasis and synonyms ("classes:",
    "Instruction:"). The first value of a field wins; values that repeat the
    template's explanations are left out. Never raises."""
    fields: dict[str, str] = {}
    m = re.search(r"\{.*\}", reply, re.DOTALL)
    if m:
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            for key, value in obj.items():
                name = _KEYS.get(str(key).strip().lower().replace("_", " "))
                if name and name not in fields:
                    text = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                    if text.strip():
                        fields[name] = text.strip()
    for line in reply.splitlines():
        lm = _LINE.match(line)
        if not lm:
            continue
        name = _KEYS.get(lm.group(1).strip().lower().replace("_", " "))
        value = lm.group(2).strip().strip("*_`").strip()
        if not name or name in fields or not value:
            continue
        if value.strip(_QUOTES).casefold().rstrip(".") in _TEMPLATE_VALUES:
            continue
        fields[name] = value
    return fields


def _usable(fields: dict[str, str]) -> bool:
    return len(fields.keys() & {"type", "labels", "prompt", "name", "input"}) >= 2


# --------------------------------------------------------------------------- repair


def draft_from_fields(
    description: str, fields: dict[str, str], *, notes: tuple[str, ...] = ()
) -> TaskDraft:
    """The draft for a description and what the model said (`fields`, possibly
    empty), checked and repaired by rules; each repair is added to the notes."""
    description = check_description(description)
    out = list(notes)
    from_model = bool(fields)

    rule_labels = labels_from_description(description)
    model_labels = split_labels(fields["labels"]) if "labels" in fields else None
    if (
        "labels" in fields
        and model_labels is None
        and fields["labels"].casefold().strip(" .") not in _NOT_LABELS
    ):
        out.append(f"model labels {fields['labels'][:60]!r} are not a list of 2-20 short labels")
    if rule_labels:
        labels = rule_labels
        if model_labels and [x.casefold() for x in model_labels] != [
            x.casefold() for x in rule_labels
        ]:
            out.append(
                f"labels taken from the description ({', '.join(rule_labels)}), "
                f"not the model's ({', '.join(model_labels)})"
            )
    else:
        labels = model_labels or ()

    model_type = _task_type(fields.get("type", ""))
    if labels:
        task_type: TaskType = "classification"
        if model_type and model_type != "classification":
            out.append(f"the model said {model_type}, but the task has labels: classification")
    else:
        if model_type == "classification":
            out.append(
                "the model said classification, but no label set of 2-20 labels was found: "
                "treated as open-ended"
            )
            model_type = None
        task_type = model_type or _type_from_description(description)
        if fields.get("type") and _task_type(fields["type"]) is None:
            out.append(f"model type {fields['type'][:40]!r} unknown: {task_type} by rules")

    name = _slug(fields.get("name", ""))
    if not name or len(fields.get("name", "").split()) > 6:
        if "name" in fields:
            out.append(f"model name {fields['name'][:40]!r} unusable: named from the description")
        name = task_slug(description)

    input_kind = _input_kind(fields.get("input", ""), description)
    classification = task_type == "classification"
    if classification:
        output_format = _answer_format(labels) or "one label"
    else:
        output_format = _short(fields.get("output", "")) or "free text"

    seed = _seed_instruction(fields.get("prompt", ""), labels)
    if seed is None:
        if "prompt" in fields:
            out.append("model prompt unusable: the description is the seed prompt")
        seed = description if description.endswith((".", "?", "!")) else description + "."
    seed = escape_braces(seed, ("input",))

    metric: str | dict[str, Any]
    if classification:
        metric = "choice_accuracy"
    else:
        metric = {"name": "judge", "rubric": judge_rubric(description, output_format)}
    return TaskDraft(
        name=name,
        description=description,
        task_type=task_type,
        labels=labels,
        input_kind=input_kind,
        output_format=output_format,
        metric=metric,
        seed_prompt=seed,
        notes=tuple(out),
        from_model=from_model,
    )


def judge_rubric(description: str, output_format: str) -> str:
    fmt = "" if output_format == "free text" else f" It is {output_format.rstrip('.')}."
    return (
        f"The output does this task well: {description.rstrip('.')}.{fmt} "
        "It is correct, complete and concise."
    )


def _answer_format(labels: tuple[str, ...]) -> str | None:
    return answer_format_line([Example("labels", "", choices=labels)]) if labels else None


def _task_type(value: str) -> TaskType | None:
    v = value.casefold()
    patterns: tuple[tuple[TaskType, str], ...] = (
        ("classification", r"classif|categor|label"),
        ("extraction", r"extract"),
        ("qa", r"\bqa\b|question|answer"),
        ("generation", r"generat|writ|summar|translat|rewrit|paraphras"),
    )
    hits = [t for t, pattern in patterns if re.search(pattern, v)]
    return hits[0] if len(hits) == 1 else None  # several: the template's list echoed


def _type_from_description(description: str) -> TaskType:
    d = description.casefold()
    if re.search(r"\bextract|\bfind all\b|\blist (?:all|every|the)\b|\bpull out\b", d):
        return "extraction"
    if re.search(r"\banswer\b.*\bquestions?\b|\bquestions?\b.*\banswer|\bqa\b", d):
        return "qa"
    return "generation"


_STOP = {
    "a", "an", "the", "each", "every", "of", "by", "as", "into", "to", "for", "and", "or",
    "in", "on", "with", "from", "is", "are", "it", "its", "their", "whether", "one",
}  # fmt: skip


def _content_words(text: str) -> list[str]:
    return [w for w in re.findall(r"[A-Za-z0-9]+", text.casefold()) if w not in _STOP]


def task_slug(description: str) -> str:
    """A short name made of the description's first content words."""
    return _slug(" ".join(_content_words(description)[:4])) or "described-task"


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-")[:40].strip("-")
    return slug if len(slug) >= 3 else ""


def _short(value: str, words: int = 8) -> str:
    v = value.strip().strip(_QUOTES).rstrip(".")
    if not v or len(v.split()) > words or "<" in v or v.casefold() in _TEMPLATE_VALUES:
        return ""
    return v


def _input_kind(value: str, description: str) -> str:
    """What one input is ("support ticket"): the model's words when short, else the
    object of the description's verb, else "input"."""
    v = _short(value, words=6)
    if v:
        return _ARTICLE.sub("", v.casefold())
    m = re.match(
        r"\s*\w+\s+(?:each\s+|every\s+|a\s+|an\s+|the\s+)?([a-z][a-z -]{2,40}?)\s+"
        r"(?:by|as|into|according|based|for|from|whether|with|in|on|to)\b",
        description,
        re.IGNORECASE,
    )
    if m and len(m.group(1).split()) <= 3:
        noun = m.group(1).casefold()
        return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun
    return "input"


def _seed_instruction(value: str, labels: tuple[str, ...]) -> str | None:
    if not value:
        return None
    parsed = parse_instruction(value, min_chars=12, max_chars=600)
    if parsed.text is None or parsed.text.casefold().rstrip(".") in _TEMPLATE_VALUES:
        return None
    if labels and parsed.text.strip(_QUOTES + ". ").casefold() in {x.casefold() for x in labels}:
        return None
    return parsed.text


# --------------------------------------------------------------------------- the model


@dataclass
class IntentAttempts:
    """What asking the model gave: replies, unusable ones, and why it stopped."""

    replies: int = 0
    unusable: int = 0
    errors: list[str] = field(default_factory=list)


def analyse_intent(
    description: str,
    client: ModelClient,
    *,
    attempts: int = 2,
    seed: int = 0,
    max_tokens: int = 160,
) -> TaskDraft:
    """The task draft for a description. Asks `client` (the optimizer model) up to
    `attempts` times (temperature 0, then 0.7) for the fields, and repairs what it
    says by rules (see `draft_from_fields`). A failing or exhausted model, or replies
    with nothing usable, leave a draft made by the rules, with a note saying so.
    Raises ConfigError only for an empty or too long description."""
    description = check_description(description)
    prompt = fill(load_template("intent.txt"), {"description": description})
    tried = IntentAttempts()
    fields: dict[str, str] = {}
    for i in range(attempts):
        request = CompletionRequest(
            messages=(Message("user", prompt),),
            temperature=0.0 if i == 0 else 0.7,
            max_tokens=max_tokens,
            seed=seed,
            sample_index=i,
        )
        try:
            reply = client.complete(request).text
        except (BudgetExhausted, ModelUnavailable) as e:
            tried.errors.append(str(e))
            break
        except ModelError as e:
            tried.errors.append(str(e))
            continue
        tried.replies += 1
        parsed = parse_intent_reply(reply)
        if _usable(parsed):
            fields = parsed
            break
        tried.unusable += 1
    notes: list[str] = []
    if not fields:
        why = f"{tried.unusable} unusable replies" + (
            f", {len(tried.errors)} failed calls ({tried.errors[-1][:80]})" if tried.errors else ""
        )
        notes.append(f"the optimizer model gave no usable task description ({why}): rules only")
    return draft_from_fields(description, fields, notes=tuple(notes))
