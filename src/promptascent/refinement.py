"""Refine a finished run with a person's feedback (`promptascent refine RUN --feedback
"..." [--feedback ...] [--candidate ID --spans]`; Promptomatix's feedback loop, SPO's
requirements).

Each comment becomes a requirement of the task, verbatim ("Feedback on the outputs:
..."; a span comment stored with the run, promptascent.span_feedback, as "Feedback on
the prompt, about "SPAN": ..."), never rewritten by a model: it reaches the optimizer
(the task description and `requirements`, which SPO and the meta-prompts read) and,
for a task scored by the judge metric, the judge's rubric. The new run starts from the
earlier run's best prompt (or the candidate named) as its seed, with the same task,
data, models and budget unless overridden, and records where it came from (`origin`
in its store: the earlier run, the candidate it started from, every feedback given so
far), so a chain of refinements keeps its history.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from promptascent.config.task import TaskSpec, task_from_dict
from promptascent.errors import ConfigError
from promptascent.llm.budget import Budget
from promptascent.planning import plan
from promptascent.run_settings import RunSettings
from promptascent.runner import Runner, RunResult
from promptascent.span_feedback import SpanComment
from promptascent.store.run_store import FILENAME, RunStore

MAX_FEEDBACK_CHARS = 2000
ENDED = ("finished", "budget", "stopped")


def feedback_requirement(feedback: str) -> str:
    """The requirement a comment on the outputs becomes; ConfigError if it is empty or
    too long."""
    text = " ".join(feedback.split())
    if not text:
        raise ConfigError("feedback: empty; say what is wrong with the outputs", key="feedback")
    if len(text) > MAX_FEEDBACK_CHARS:
        raise ConfigError(
            f"feedback: {len(text)} characters; at most {MAX_FEEDBACK_CHARS} (one comment)",
            key="feedback",
        )
    return f"Feedback on the outputs: {text}"


def refined_task(task: TaskSpec, best_prompt: dict[str, Any], requirement: str) -> TaskSpec:
    """`task` seeded with the earlier best prompt, the requirement (a line per comment)
    added where the optimizers and the judge read it."""
    requirements = "\n".join(x for x in (task.requirements.strip(), requirement) if x)
    description = "\n".join(x for x in ((task.description or "").strip(), requirement) if x)
    seed = {
        "instruction": best_prompt.get("instruction") or "",
        "system": best_prompt.get("system"),
        "output_format": best_prompt.get("output_format"),
        "demos": [dict(d) for d in best_prompt.get("demos") or ()],
    }
    update: dict[str, Any] = {
        "seed_prompt": seed,
        "requirements": requirements,
        "description": description,
    }
    metric = task.metric
    if isinstance(metric, dict) and metric.get("name") == "judge":
        rubric = str(metric.get("rubric") or "").strip()
        update["metric"] = {**metric, "rubric": "\n".join(x for x in (rubric, requirement) if x)}
    raw = json.loads(task.model_dump_json())
    raw.update(update)
    raw.pop("base_dir", None)
    return task_from_dict(raw, base_dir=task.base_dir, source="refined task")


def _ended_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The earlier run's config, result and origin; ConfigError unless it ended."""
    if not (run_dir / FILENAME).exists():
        raise ConfigError(f"{run_dir}: not a run folder (no {FILENAME})")
    store = RunStore.open_existing(run_dir)
    try:
        config, status = store.get("config"), store.get("status")
        result, origin = store.get("result"), store.get("origin")
    finally:
        store.close()
    if config is None or result is None:
        raise ConfigError(f"run {run_dir.name}: no optimization result recorded to refine")
    if status not in ENDED:
        raise ConfigError(
            f"run {run_dir.name} has not ended ({status}); finish it with "
            f"`promptascent optimize --resume {run_dir.name}` first"
        )
    return config, result, origin


def refine(
    run_dir: str | Path,
    feedback: str | Sequence[str] = (),
    *,
    candidate: str | None = None,
    spans: bool = False,
    optimizer: str | None = None,
    options: dict[str, Any] | None = None,
    budget: Budget | None = None,
    settings: RunSettings | None = None,
    run_id: str | None = None,
) -> RunResult:
    """A new run that continues `run_dir`'s optimization from its best prompt (or from
    `candidate`'s) with each `feedback` comment added as a requirement, and with
    `spans`, every span comment stored with the run on that candidate (its prompt and
    its outputs). ConfigError when there is no comment at all (see the module
    docstring)."""
    run_dir = Path(run_dir)
    comments = [feedback] if isinstance(feedback, str) else list(feedback)
    requirements = [feedback_requirement(f) for f in comments]
    config, result, origin = _ended_run(run_dir)
    start_id = candidate or result["best_candidate"]
    start_prompt, stored = _start(run_dir, start_id)
    if spans:
        requirements.extend(c.requirement() for c in stored)
    if not requirements:
        where = (
            f"no span comment is stored on candidate {start_id}"
            if spans
            else "give a comment, or use the span comments stored on it (spans)"
        )
        raise ConfigError(f"feedback: none; refine needs feedback: {where}", key="feedback")
    task = task_from_dict(
        config["task"], base_dir=Path(config["base_dir"]), source=str(run_dir / FILENAME)
    )
    same = optimizer is None or optimizer == config["optimizer"]["name"]
    p = plan(
        refined_task(task, start_prompt, "\n".join(requirements)),
        optimizer=optimizer or config["optimizer"]["name"],
        optimizer_options={**(config["optimizer"]["options"] if same else {}), **(options or {})},
        budget=budget or Budget.from_mapping(config["budget"]),
    )
    history = [*(origin or {}).get("feedback", []), *requirements]
    runner = Runner(p, settings or RunSettings(runs_dir=run_dir.parent), run_id=run_id)
    runner.origin = {
        "refined_from": run_dir.name,
        "refined_from_dir": str(run_dir.resolve()),
        "best_candidate": result["best_candidate"],
        "feedback": history,
    }
    if start_id != result["best_candidate"]:
        runner.origin["candidate"] = start_id
    return runner.run()


def _start(run_dir: Path, candidate_id: str) -> tuple[dict[str, Any], list[SpanComment]]:
    """The prompt of `candidate_id` in the run (ConfigError naming the run if it has
    no such candidate) and the span comments stored on it."""
    store = RunStore.open_existing(run_dir)
    try:
        try:
            prompt = store.prompt(candidate_id)  # a dict: the refined task writes it
        except ConfigError:
            raise ConfigError(
                f"candidate: run {run_dir.name} has no candidate {candidate_id!r} "
                "(see `promptascent show`)",
                key="candidate",
            ) from None
        return prompt, [SpanComment.from_dict(c) for c in store.span_comments(candidate_id)]
    finally:
        store.close()
