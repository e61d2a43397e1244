"""Task files: YAML validated into a TaskSpec. Unknown or missing keys are errors
naming the key and the file."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from promptascent.config.spo_settings import is_spo_settings, task_from_spo_settings
from promptascent.errors import ConfigError

# The `models:` section's schema belongs to the model layer (llm/spec.py); re-exported
# here, where it was.
from promptascent.llm.spec import TEST_BACKENDS_ENV as TEST_BACKENDS_ENV
from promptascent.llm.spec import ModelSpec as ModelSpec
from promptascent.llm.spec import ModelsSpec as ModelsSpec
from promptascent.llm.spec import PricesSpec as PricesSpec
from promptascent.llm.spec import check_test_backend as check_test_backend

# The default of `data.max_example_chars` (data/text.py checks rows against it).
DEFAULT_MAX_EXAMPLE_CHARS = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Either `folder` (task.json + train/dev/test.jsonl), explicit split files, or
    `examples`: train rows written in the task file (as JSONL rows). Paths are
    relative to the task file."""

    folder: Path | None = None
    train: Path | None = None
    dev: Path | None = None
    test: Path | None = None
    examples: list[dict[str, Any]] | None = None
    dev_from_train: bool = Field(
        True,
        description=(
            "Without a dev split, split train in two. false: no dev split, for optimizers "
            "that select without labels (spo)."
        ),
    )
    input_field: str = "input"
    target_field: str = "target"
    limits: dict[Literal["train", "dev", "test"], int] = Field(default_factory=dict)
    max_example_chars: int = Field(
        DEFAULT_MAX_EXAMPLE_CHARS,
        ge=1,
        description="Longest example, in characters of text; a longer row is an error.",
    )

    @field_validator("limits")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        for k, n in v.items():
            if n <= 0:
                raise ValueError(f"limit for {k} must be positive")
        return v


class PromptSpec(_Strict):
    instruction: str
    system: str | None = None
    # "auto": a line naming the allowed answers, made from the examples' choices.
    output_format: str | None = None
    demos: list[dict[str, Any]] = Field(default_factory=list)


class TaskParamsSpec(_Strict):
    temperature: float = Field(0.0, ge=0, le=2)
    max_tokens: int = Field(48, ge=1)
    stop: list[str] = Field(default_factory=list)


class EvaluationSpec(_Strict):
    concurrency: int = Field(2, ge=1, description="Task-model calls in flight.")
    test: bool = Field(True, description="Score seed and best on the test split at the end.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the reported intervals.")
    train_gap_examples: int = Field(
        50,
        ge=0,
        description="Train examples the winner is scored on for the train-dev gap (0: off).",
    )
    folds: int = Field(
        0,
        ge=0,
        description=(
            "k-fold selection for small data (0: off): train and dev are pooled into k "
            "folds, the search runs once per fold, the fold winners compete on all of them."
        ),
    )
    scoring: Literal["generate", "likelihood", "auto"] = Field(
        "generate",
        description=(
            "generate: the task model answers and the metric scores the answer. likelihood: "
            "the most likely of the example's choices is the answer (multiple choice; needs "
            "a model that scores continuations). auto: likelihood where both hold."
        ),
    )
    normalize: Literal["sum", "mean", "byte"] = Field(
        "sum",
        description=(
            "Likelihood of a multi-token choice: sum (its probability), mean (per token) or "
            "byte (per UTF-8 byte, lm-evaluation-harness's acc_norm)."
        ),
    )
    calibration: Literal["none", "contextual", "pmi"] = Field(
        "none",
        description=(
            "Likelihood calibration: contextual (divide out the choice distribution on "
            "content-free inputs) or pmi (subtract each choice's score given an empty input)."
        ),
    )
    select_by: Literal["accuracy", "loss"] = Field(
        "accuracy",
        description=(
            "What selection compares under likelihood scoring: accuracy (the lower loss "
            "breaks ties) or loss (the gold choice's mean cross-entropy)."
        ),
    )


class ConstraintsSpec(_Strict):
    """Limits on every candidate prompt (see prompts/constraints.py)."""

    protected: list[str] = Field(
        default_factory=list,
        description="Texts every candidate keeps verbatim (also <keep>...</keep> in the seed).",
    )
    max_prompt_tokens: int | None = Field(None, ge=1, description="Longest candidate, in tokens.")
    keep_output_format: bool = Field(
        False, description="Every candidate keeps the seed's output format."
    )


class OptimizerSpec(BaseModel):
    """`name` plus that optimizer's own options (checked by the optimizer's config)."""

    model_config = ConfigDict(extra="allow")
    name: str = "ape"

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TaskSpec(_Strict):
    name: str
    description: str = ""
    # What a good output is, in words: for judges and label-free optimizers (spo).
    requirements: str = ""
    data: DataSpec
    seed_prompt: str | PromptSpec | None = None
    metric: str | dict[str, Any] | None = None
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    task_params: TaskParamsSpec = Field(default_factory=TaskParamsSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    budget: dict[str, int | float] = Field(default_factory=dict)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec)
    length_penalty: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Cost-aware objective for every optimizer: score - length_penalty * prompt "
            "tokens / seed prompt tokens (0: off; CAPO's paper uses 0.05)."
        ),
    )
    seed: int = 0
    base_dir: Path = Field(default=Path("."), exclude=True)

    def resolve(self, path: Path | None) -> Path | None:
        if path is None:
            return None
        return path if path.is_absolute() else (self.base_dir / path)


def load_task(path: str | Path) -> TaskSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: task file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        if "'\\t'" in problem:
            problem += " (a tab: indent YAML with spaces)"
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task file is a mapping of keys (name, data, ...)")
    if is_spo_settings(raw):
        raw = task_from_spo_settings(raw, path)
    return task_from_dict(raw, base_dir=path.parent, source=str(path))


def task_from_dict(
    raw: dict[str, Any], *, base_dir: Path = Path("."), source: str = "task"
) -> TaskSpec:
    try:
        return TaskSpec(**raw, base_dir=base_dir)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e, TaskSpec)}") from None


def describe_validation_error(e: ValidationError, model: type[BaseModel] | None = None) -> str:
    """The first problem of a validation error as "key: what is wrong", in the words
    of a task file (a mapping, a string, a number), not of the classes behind it.
    With the `model` validated, an unknown key comes with the known key it resembles."""
    errors = e.errors()
    first = errors[0]
    loc = tuple(str(p) for p in first["loc"])
    at = next((i for i, p in enumerate(loc) if _is_union_tag(p)), None)
    if at is None:
        return _describe(first, loc, len(errors) - 1, model)
    # A value that matched no member of a union (`str | PromptSpec`) gives one error
    # per member, each under the member's tag: say them once, under the key.
    members = [
        err
        for err in errors
        if tuple(str(p) for p in err["loc"][:at]) == loc[:at]
        and len(err["loc"]) > at
        and _is_union_tag(str(err["loc"][at]))
    ]
    more = len(errors) - len(members)
    deeper = [err for err in members if len(err["loc"]) > at + 1]
    if deeper:  # the value has the shape of one member, with a problem inside
        inner = tuple(str(p) for p in deeper[0]["loc"][at + 1 :])
        return _describe(deeper[0], loc[:at] + inner, more + len(deeper) - 1, model)
    key = ".".join(loc[:at]) or "(top level)"
    wanted = _or(list(dict.fromkeys(_expected_kind(err) for err in members)))
    return f"{key}: expected {wanted}, got {_describe_value(first['input'])}{_more(more)}"


def _describe(
    err: Any, loc: tuple[str, ...], more: int, model: type[BaseModel] | None = None
) -> str:
    key = ".".join(loc) or "(top level)"
    kind = err["type"]
    tail = _more(more)
    if kind == "extra_forbidden":
        known = _keys_at(model, loc[:-1]) if model is not None and loc else []
        close = difflib.get_close_matches(loc[-1], known, n=1) if known else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if loc and loc[-1] == "api_key":
            hint = (
                " (a key is never written in the task file: name the environment variable "
                "holding it in api_key_env, or a file holding it in api_key_file)"
            )
        return f"unknown key {key!r}{hint}{tail}"
    if kind == "missing":
        return f"missing key {key!r}{tail}"
    ctx = err.get("ctx") or {}
    if loc and loc[-1] == "[key]":  # a key of a mapping that takes only some keys
        hint = f" (expected {ctx['expected']})" if "expected" in ctx else ""
        return f"{'.'.join(loc[:-2])}: unknown key {err['input']!r}{hint}{tail}"
    got = _describe_value(err["input"])
    if kind == "path_type":
        return f"{key}: expected a path, got {got}{tail}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"{key}: expected a mapping{_MAPPING_HINTS.get(key, '')}, got {got}{tail}"
    if kind == "literal_error" and "expected" in ctx:
        return f"{key}: {err['input']!r} is not one of {ctx['expected']}{tail}"
    if kind == "value_error":
        return f"{key}: {err['msg'].removeprefix('Value error, ')}{tail}"
    return f"{key}: {err['msg']} (got {got}){tail}"


def _keys_at(model: type[BaseModel], path: tuple[str, ...]) -> list[str]:
    """The keys the mapping at `path` of `model` accepts ([] when it is not a model)."""
    current: Any = model
    for part in path:
        field = current.model_fields.get(part)
        current = _model_of(field.annotation) if field is not None else None
        if current is None:
            return []
    return [name for name, f in current.model_fields.items() if not f.exclude]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class an annotation is or contains (`PromptSpec | str | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _more(n: int) -> str:
    return f" (and {n} more)" if n > 0 else ""


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "bytes"}


def _is_union_tag(part: str) -> bool:
    """Whether a location part names a union member ("str", "PromptSpec",
    "dict[str,any]") rather than a key."""
    return part in _TYPE_TAGS or part[:1].isupper() or ("[" in part and part[:1] != "[")


_MAPPING_HINTS = {
    "data": " (folder: PATH, or train: FILE with optional dev and test, or examples: ROWS)",
    "optimizer": " (name: ape, plus its options)",
    "seed_prompt": " (instruction: ..., optional system, output_format, demos)",
    "task_params": " (temperature, max_tokens, stop)",
    "evaluation": " (concurrency, test, confidence, scoring)",
    "models": " (task, optimizer, judge)",
}


def _expected_kind(err: Any) -> str:
    kind = str(err["type"])
    for prefix, words in (
        ("string", "a string"),
        ("int", "a number"),
        ("float", "a number"),
        ("bool", "true or false"),
        ("list", "a list"),
        ("model", "a mapping"),
        ("dict", "a mapping"),
        ("none", "nothing"),
    ):
        if kind.startswith(prefix):
            return words
    return str(err["loc"][-1])


def _or(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _describe_value(value: Any) -> str:
    """A value as a user wrote it: scalars shown (shortened), collections named."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
