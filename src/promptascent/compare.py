"""Several optimizers on one task, same budget, seed and splits, compared on test."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptascent.config.task import TaskSpec
from promptascent.errors import ConfigError
from promptascent.llm.budget import Budget
from promptascent.planning import Plan, plan
from promptascent.report import Report, comparison_report
from promptascent.report.rows import to_dataframe
from promptascent.run_settings import RunSettings
from promptascent.runner import Runner, RunResult
from promptascent.store.files import write_atomic


@dataclass(frozen=True)
class CompareRow:
    optimizer: str
    seed: int
    result: RunResult

    def to_dict(self) -> dict[str, Any]:
        r = self.result.to_dict()
        usage = r["search_usage"]
        return {
            "optimizer": self.optimizer,
            "seed": self.seed,
            "run_id": r["run_id"],
            "status": r["status"],
            "seed_candidate": r["seed_candidate"],
            "best_candidate": r["best_candidate"],
            "test_seed": r["test"]["seed"],
            "test_best": r["test"]["best"],
            "difference": r["test"]["difference"],
            "majority_rate": r["test"]["majority_rate"],
            "task_calls": usage["task"]["calls"],
            "task_tokens": usage["task"]["tokens"],
            "optimizer_calls": usage["optimizer"]["calls"],
            "optimizer_tokens": usage["optimizer"]["tokens"],
            "judge_calls": usage["judge"]["calls"],
            "prompt_tokens": r["prompt_tokens"],
            "scoring": r["scoring"],
            "model_calls": sum(u["model_calls"] for u in r["usage"].values()),
            "wall_seconds": r["wall_seconds"],
        }


@dataclass
class Comparison:
    task: str
    rows: list[CompareRow] = field(default_factory=list)
    folder: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "rows": [row.to_dict() for row in self.rows]}

    def report(self) -> Report:
        """The compare page (promptascent.report), from this comparison's rows."""
        return comparison_report(self.to_dict(), self.folder)

    def _repr_html_(self) -> str:
        """The compare page, in a notebook cell (Jupyter calls this)."""
        return self.report().html_fragment()

    def candidate_rows(self) -> list[dict[str, Any]]:
        """Every candidate of every run, as RunResult.candidate_rows gives them, each
        row starting with the run's optimizer, seed and run id."""
        return [
            {"optimizer": row.optimizer, "seed": row.seed, "run_id": row.result.run_id, **c}
            for row in self.rows
            for c in row.result.candidate_rows()
        ]

    def to_dataframe(self) -> Any:
        """`candidate_rows()` as a pandas DataFrame; ImportError without pandas."""
        return to_dataframe(self.candidate_rows())


def split_options(pairs: dict[str, Any], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{"ape.num_candidates": 4} -> {"ape": {"num_candidates": 4}}; the prefix must
    name one of the compared optimizers."""
    out: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in pairs.items():
        name, dot, option = key.partition(".")
        if not dot or name not in out:
            raise ConfigError(
                f"options.{key}: in compare, write OPTIMIZER.OPTION=VALUE with OPTIMIZER one "
                f"of {', '.join(names)}",
                key=f"options.{key}",
            )
        out[name][option] = value
    return out


def compare(
    task: TaskSpec,
    optimizers: Sequence[str],
    *,
    budget: Budget | None = None,
    seeds: Sequence[int] = (0,),
    options: dict[str, dict[str, Any]] | None = None,
    settings: RunSettings | None = None,
) -> Comparison:
    """Runs each optimizer with each seed under the same budget on the same splits.
    Every run is recorded as usual; the comparison is written to
    `<runs_dir>/compare-<time>-<task>/compare.json`."""
    if not optimizers:
        raise ConfigError("optimizers: name at least one optimizer", key="optimizers")
    settings = settings or RunSettings()
    plans = [
        (
            name,
            s,
            plan(
                task,
                optimizer=name,
                optimizer_options=(options or {}).get(name),
                budget=budget,
                seed=s,
            ),
        )
        for s in seeds
        for name in optimizers
    ]  # every plan is validated before anything runs
    _check_scoring([p for _, _, p in plans], settings)
    comparison = Comparison(task.name)
    folder = settings.runs_dir / f"compare-{time.strftime('%Y%m%d-%H%M%S')}-{task.name}"
    comparison.folder = folder.resolve()
    for name, s, p in plans:
        result = Runner(p, replace(settings, sinks=list(settings.sinks))).run()
        comparison.rows.append(CompareRow(name, s, result))
        write_atomic(folder / "compare.json", json.dumps(comparison.to_dict(), indent=2) + "\n")
    return comparison


def _check_scoring(plans: Sequence[Plan], settings: RunSettings) -> None:
    """Each plan's scoring on its task model (ConfigError before any run starts: an
    optimizer that needs likelihood scoring on a model that cannot score, say)."""
    for p in plans:
        with settings.hub(p.task.models) as hub:
            p.scoring(hub.backend("task").info)
