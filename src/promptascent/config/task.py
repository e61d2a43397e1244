"""Task files: YAML validated into a TaskSpec. Unknown or missing keys are errors
naming the key and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from promptascent.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Strict):
    """Either `folder` (task.json + train/dev/test.jsonl) or explicit split files.
    Paths are relative to the task file."""

    folder: Path | None = None
    train: Path | None = None
    dev: Path | None = None
    test: Path | None = None
    input_field: str = "input"
    target_field: str = "target"
    limits: dict[Literal["train", "dev", "test"], int] = Field(default_factory=dict)

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
    output_format: str | None = None
    demos: list[dict[str, Any]] = Field(default_factory=list)


class PricesSpec(_Strict):
    input: float = Field(0.0, ge=0, description="Dollars per million prompt tokens.")
    output: float = Field(0.0, ge=0, description="Dollars per million completion tokens.")


class ModelSpec(_Strict):
    """A model. `backend`: embedded | openai | scripted (tests only)."""

    backend: Literal["embedded", "openai", "scripted"] = "embedded"
    model: str | None = None  # HTTP: the model name; embedded: a .gguf path (default SmolLM2)
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    api_key_file: Path | None = None  # a file holding only the key (instead of the env var)
    prices: PricesSpec = Field(default_factory=PricesSpec)
    max_concurrency: int = Field(4, ge=1)
    timeout: float = Field(60.0, gt=0)
    context_length: int | None = Field(None, ge=256)

    @classmethod
    def parse(cls, value: str | dict[str, Any] | ModelSpec) -> ModelSpec:
        """ "embedded", "embedded:/path/model.gguf", "openai:gpt-4o-mini@http://host/v1"
        or a mapping."""
        if isinstance(value, ModelSpec):
            return value
        if isinstance(value, dict):
            return cls(**value)
        backend, _, rest = value.partition(":")
        if backend == "embedded":
            return cls(backend="embedded", model=rest or None)
        if backend == "openai":
            model, _, url = rest.partition("@")
            return cls(backend="openai", model=model or None, base_url=url or None)
        raise ValueError(
            f"unknown model {value!r} (expected embedded[:PATH] or openai:MODEL[@URL])"
        )

    def identity(self) -> tuple[Any, ...]:
        """Specs with equal identity share one backend instance."""
        return (
            self.backend,
            self.model,
            self.base_url,
            self.api_key_env,
            self.api_key_file,
            self.context_length,
        )


class ModelsSpec(_Strict):
    task: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: ModelSpec = Field(default_factory=ModelSpec)
    judge: ModelSpec = Field(default_factory=ModelSpec)

    @field_validator("task", "optimizer", "judge", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return ModelSpec.parse(v) if isinstance(v, str) else v


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
    data: DataSpec
    seed_prompt: str | PromptSpec | None = None
    metric: str | dict[str, Any] | None = None
    models: ModelsSpec = Field(default_factory=ModelsSpec)
    task_params: TaskParamsSpec = Field(default_factory=TaskParamsSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    budget: dict[str, int | float] = Field(default_factory=dict)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    constraints: ConstraintsSpec = Field(default_factory=ConstraintsSpec)
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
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task file is a mapping of keys (name, data, ...)")
    return task_from_dict(raw, base_dir=path.parent, source=str(path))


def task_from_dict(
    raw: dict[str, Any], *, base_dir: Path = Path("."), source: str = "task"
) -> TaskSpec:
    try:
        return TaskSpec(**raw, base_dir=base_dir)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e)}") from None


def describe_validation_error(e: ValidationError) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if err["type"] == "missing":
        return f"missing key {key!r}"
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{key}: {err['msg']}{more}"
