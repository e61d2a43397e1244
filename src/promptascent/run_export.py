"""`promptascent export`: a run's best (or a chosen) prompt in one of the export formats,
with the run's recorded test examples for promptfoo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptascent.errors import ConfigError, PromptascentError
from promptascent.prompts.export import check_format, export_prompt
from promptascent.prompts.export_tools import PromptfooTest, example_fields, to_promptfoo
from promptascent.prompts.prompt import Prompt
from promptascent.store.run_store import EXAMPLES_KEY, FILENAME, RunStore


def export_run(run_dir: Path, fmt: str, candidate: str | None = None) -> str:
    """The prompt of `candidate` (default: the run's best) in format `fmt`. ConfigError
    for an unknown format or a run with no result and no candidate given."""
    check_format(fmt)
    store = RunStore.open_existing(run_dir)
    try:
        result = store.get("result")
        cid = candidate or (result["best_candidate"] if result else None)
        if cid is None:
            raise ConfigError(
                f"run {run_dir.name} has no best prompt yet (no result); "
                "pass --candidate ID (see `promptascent show`)"
            )
        prompt = Prompt.from_dict(store.prompt(cid))
        if fmt != "promptfoo":
            return export_prompt(prompt, fmt)
        recorded = store.get(EXAMPLES_KEY) or {}
        config = store.get("config")
    finally:
        store.close()
    split = "test" if recorded.get("test") else "dev"
    rows = recorded.get(split)
    if not rows:
        raise ConfigError(
            f"run {run_dir.name} recorded no test or dev examples, which the promptfoo "
            "export writes as tests"
        )
    metric, full = _task_examples(run_dir, config)
    tests = [_test(prompt, row, full.get(row["id"])) for row in rows]
    return to_promptfoo(
        prompt, tests, metric=metric, description=f"promptascent run {run_dir.name}", split=split
    )


def _task_examples(
    run_dir: Path, config: dict[str, Any] | None
) -> tuple[str | dict[str, Any] | None, dict[str, Any]]:
    """The task's metric and its examples by id, reloaded from the task data the run
    recorded (for named fields and every accepted answer); no examples when the data
    files cannot be read any more (the recorded text and target are used then)."""
    if config is None:
        return None, {}
    from promptascent.config.task import task_from_dict
    from promptascent.data.task_data import load_task_data

    metric = config["task"].get("metric")
    try:
        task = task_from_dict(
            config["task"], base_dir=Path(config["base_dir"]), source=str(run_dir / FILENAME)
        )
        data = load_task_data(task)
    except (PromptascentError, OSError):
        return metric, {}
    metric = metric if metric is not None else data.metric
    out: dict[str, Any] = {}
    for ds in (data.train, data.dev, data.test):
        for ex in ds.examples if ds is not None else ():
            out.setdefault(ex.id, ex)
    return metric, out


def _test(prompt: Prompt, row: dict[str, Any], example: Any) -> PromptfooTest:
    if example is not None:
        return PromptfooTest(row["id"], example_fields(prompt, example.input), example.targets)
    target = row.get("target")
    return PromptfooTest(
        row["id"], example_fields(prompt, row["input"]), (target,) if target else ()
    )
