"""MetaGPT SPO settings files, loaded as tasks.

The format (metagpt/ext/spo/settings/*.yaml in geekan/MetaGPT):

    prompt: |            # the seed prompt
      ...
    requirements: |      # what a good output is, in words ("None" for none)
      ...
    count: None          # optional: a word limit for the optimized prompt
    qa:                  # unlabelled sample inputs; answers optional ("None")
      - question: |
          ...
        answer: |
          ...

(Older versions named the list `faq`; both are read.) YAML leaves `None` a string, so
"None" counts as absent, as in MetaGPT. The task made from it: the questions are the
train examples (answers, where given, their targets: SPO shows them to the optimizer
and the judge as references of the wanted format, never scores against them); no dev
or test split; optimizer `spo`; metric `judge` with the requirements as its rubric.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError

KEYS = ("prompt", "requirements", "count", "qa", "faq")
# Outputs of open-ended tasks (writing, summarising) run long: the task file's default
# of 48 tokens would cut them.
TASK_MAX_TOKENS = 256


def is_spo_settings(raw: dict[str, Any]) -> bool:
    """Whether a YAML mapping is an SPO settings file rather than a task file (which
    has `name` and `data`, and no `prompt`)."""
    return "prompt" in raw and "name" not in raw and "data" not in raw


def task_from_spo_settings(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """The task an SPO settings file describes, as the mapping of a task file (validated
    by config/task.py, which reads the file: this module stays below it). ConfigError
    naming the file and key."""
    for key in raw:
        if key not in KEYS:
            raise ConfigError(
                f"{path}: unknown key {key!r} in an SPO settings file "
                "(keys: prompt, requirements, count, qa)"
            )
    for key in ("prompt", "requirements"):
        if key not in raw:
            raise ConfigError(f"{path}: missing key {key!r} (an SPO settings file)")
    if "qa" in raw and "faq" in raw:
        raise ConfigError(f"{path}: give the questions under 'qa' or 'faq', not both")
    if "qa" not in raw and "faq" not in raw:
        raise ConfigError(f"{path}: missing key 'qa' (the sample questions)")
    prompt = _text(raw["prompt"], path, "prompt") or ""
    requirements = _text(raw["requirements"], path, "requirements") or ""
    words = _count(raw.get("count"), path)
    key = "qa" if "qa" in raw else "faq"
    rows = _rows(raw[key], path, key)
    optimizer: dict[str, Any] = {"name": "spo"}
    if words is not None:
        optimizer["prompt_words"] = words
    metric: dict[str, Any] = {"name": "judge"}
    if requirements:
        metric["rubric"] = requirements
    return {
        "name": path.stem,
        "requirements": requirements,
        # Literal text, not a template: its braces are not placeholders.
        "seed_prompt": prompt.replace("{", "{{").replace("}", "}}"),
        "data": {"examples": rows, "dev_from_train": False},
        "metric": metric,
        "optimizer": optimizer,
        "task_params": {"max_tokens": TASK_MAX_TOKENS},
    }


def _text(value: Any, path: Path, key: str) -> str | None:
    """A text field; None for null, empty, or MetaGPT's "None"."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{path}: {key}: expected text, got {_kind(value)}")
    text = str(value).strip()
    return None if text in ("", "None") else text


def _count(value: Any, path: Path) -> int | None:
    if value is None or (isinstance(value, str) and value.strip() in ("", "None")):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{path}: count: expected a positive whole number or None, got {value!r}")
    return value


def _rows(value: Any, path: Path, key: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: {key}: expected a non-empty list of question/answer items")
    rows = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: {where}: expected a mapping (question, answer)")
        for k in item:
            if k not in ("question", "answer"):
                raise ConfigError(f"{path}: {where}: unknown key {k!r} (question, answer)")
        if "question" not in item:
            raise ConfigError(f"{path}: {where}: missing key 'question'")
        question = _text(item["question"], path, f"{where}.question")
        if question is None:
            raise ConfigError(f"{path}: {where}.question: empty")
        row: dict[str, Any] = {"id": f"{path.stem}-{i}", "input": question}
        answer = _text(item.get("answer"), path, f"{where}.answer")
        if answer is not None:
            row["target"] = answer
        rows.append(row)
    return rows


def _kind(value: Any) -> str:
    return (
        "a mapping"
        if isinstance(value, dict)
        else "a list"
        if isinstance(value, list)
        else repr(value)
    )
