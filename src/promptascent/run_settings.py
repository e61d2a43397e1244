"""Where and how a run executes (not part of the task): its folder, the caches, model
overrides and event sinks. Every entry point (a search, `eval`, the describe steps, a
preference session) takes these and builds its models through `hub`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from promptascent.events import EventSink
from promptascent.llm.base import LLM
from promptascent.llm.client import CachePolicy
from promptascent.llm.hub import ModelHub
from promptascent.llm.spec import ModelsSpec
from promptascent.llm.types import Role

DEFAULT_RUNS_DIR = Path("runs")
DEFAULT_CACHE_DIR = Path(".promptascent/cache")


@dataclass
class RunSettings:
    """Where and how a run executes (not part of the task)."""

    runs_dir: Path = DEFAULT_RUNS_DIR
    cache_dir: Path | None = DEFAULT_CACHE_DIR  # None: no caches at all (--no-cache)
    cache_policy: CachePolicy = field(default_factory=CachePolicy)
    backends: dict[Role, LLM] = field(default_factory=dict)  # overrides, e.g. scripted models
    sinks: list[EventSink] = field(default_factory=list)
    # Experiment trackers (promptascent.tracking: "mlflow", "wandb", "otel"); a resumed run
    # keeps its own.
    trackers: tuple[str, ...] = ()

    def hub(self, models: ModelsSpec, *, journal_dir: Path | None = None) -> ModelHub:
        """The models of a run under these settings (not opened: see ModelHub.open),
        with its journal in `journal_dir` (a run folder)."""
        return ModelHub(
            models,
            backends=self.backends,
            cache_dir=self.cache_dir,
            cache_policy=self.cache_policy,
            journal_dir=journal_dir,
        )
