"""Standalone `gepa` adapter: run inside the gepa venv as `python adapter_gepa.py CFG`.

gepa.optimize with its DefaultAdapter on a one-component candidate {"system_prompt": seed}:
the system prompt is the instruction, the user message is the example's input. The task
model is litellm "openai/local" at the proxy's optimize-phase "task" URL; the reflection
LM is the same model at the "meta" URL. max_metric_calls is the task-call budget. The
evaluator scores with the choice rule (first choice named == target) and gives feedback
in the words of gepa's own ContainsAnswerEvaluator. The test outputs are the DefaultAdapter's
full assistant responses for the seed and the best candidate, through the test URL.
"""

from __future__ import annotations

import traceback
from typing import Any

import gepa
from adapter_common import (
    Config,
    Result,
    choice_score,
    finish,
    load_config,
    run_with_timeout,
    timed,
)
from gepa.adapters.default_adapter.default_adapter import DefaultAdapter, EvaluationResult

COMPONENT = "system_prompt"


def make_evaluator(choices: list[str]) -> Any:
    def evaluate(data: dict[str, Any], response: str) -> EvaluationResult:
        score = choice_score(response, data["answer"], choices)
        if score:
            feedback = f"The generated response is correct. The answer is '{data['answer']}'."
        else:
            feedback = (
                f"The generated response is incorrect. The correct answer is '{data['answer']}'. "
                f"Answer with exactly one of: {', '.join(choices)}."
            )
        return EvaluationResult(score=score, feedback=feedback, objective_scores=None)

    return evaluate


def make_adapter(cfg: Config, url: str) -> DefaultAdapter:
    kwargs = {
        "api_base": url,
        "api_key": "none",
        "max_tokens": cfg.task_max_tokens,
        "temperature": 0.0,
    }
    return DefaultAdapter(
        model="openai/local",
        evaluator=make_evaluator(cfg.choices),
        max_litellm_workers=2,
        litellm_batch_completion_kwargs=kwargs,
    )


def to_data(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"input": r["input"], "additional_context": {}, "answer": r.get("target", "")} for r in rows
    ]


def run_test(cfg: Config, prompt: str) -> dict[str, str]:
    adapter = make_adapter(cfg, cfg.urls["test"])
    batch = adapter.evaluate(to_data(cfg.test), {COMPONENT: prompt})
    return {
        r["id"]: o["full_assistant_response"] for r, o in zip(cfg.test, batch.outputs, strict=True)
    }


def optimize(cfg: Config, res: Result) -> Any:
    res.note(f"gepa.optimize(max_metric_calls={cfg.budget}, DefaultAdapter, same reflection LM)")
    return gepa.optimize(
        seed_candidate={COMPONENT: cfg.seed_prompt},
        trainset=to_data(cfg.train),
        valset=to_data(cfg.dev),
        adapter=make_adapter(cfg, cfg.urls["task"]),
        reflection_lm="openai/local",
        reflection_lm_kwargs={
            "api_base": cfg.urls["meta"],
            "api_key": "none",
            "max_tokens": cfg.meta_max_tokens,
            "temperature": 0.7,
        },
        max_metric_calls=cfg.budget,
        seed=cfg.seed,
        display_progress_bar=False,
    )


def best_text(result: Any) -> str:
    best = result.best_candidate
    return best if isinstance(best, str) else str(best[COMPONENT])


def main() -> None:
    cfg = load_config()
    res = Result(cfg, gepa.__version__ if hasattr(gepa, "__version__") else "0.1.4")
    try:
        res.set(test_outputs_seed=timed(res, "test_seed", lambda: run_test(cfg, cfg.seed_prompt)))
    except Exception:
        finish(res, "crashed", traceback.format_exc())
    status, result, error = timed(
        res, "optimize", lambda: run_with_timeout(lambda: optimize(cfg, res), cfg.opt_timeout)
    )
    if status != "ok":
        finish(res, status, error)
    best = best_text(result)
    res.set(best_prompt=best)
    res.note(
        f"candidates explored: {len(result.candidates)}; "
        f"val scores: {[round(s, 3) for s in result.val_aggregate_scores]}; "
        f"total metric calls: {getattr(result, 'total_metric_calls', None)}"
    )
    res.set(test_outputs_best=timed(res, "test_best", lambda: run_test(cfg, best)))
    finish(res, "ok")


if __name__ == "__main__":
    main()
