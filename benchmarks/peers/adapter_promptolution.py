"""promptolution adapter (CAPO, OPRO, EvoPromptGA), run in its venv.

    python adapter_promptolution.py CFG


Built the way promptolution.optimize() builds it (APILLM, MarkerBasedPredictor without
forced classes, ClassificationTask with eval_strategy="sequential_block"), except that
the task LLM and the meta LLM are two APILLM objects on two proxy URLs (same model), the
task metric is the choice rule (first choice named == target) instead of exact match,
and the task data are train + dev. The initial population is the seed prompt plus three
variations of it made by the library's own create_prompt_variation with the meta LLM.

Budget: promptolution has no call budget, only n_steps and callbacks checked between
steps; a callback stops the run once the task LLM has made `budget` calls (so a step
in progress can overshoot). The test output per example is what the predictor extracts
(text between <final_answer> tags, or the whole reply when there is none); the raw
replies are kept too.
"""

from __future__ import annotations

import traceback
from importlib.metadata import version
from typing import Any

import pandas as pd
from adapter_common import (
    Config,
    Result,
    choice_score,
    finish,
    load_config,
    run_with_timeout,
    timed,
)
from promptolution.llms.api_llm import APILLM
from promptolution.optimizers.capo import CAPO
from promptolution.optimizers.evoprompt_ga import EvoPromptGA
from promptolution.optimizers.opro import OPRO
from promptolution.predictors.maker_based_predictor import MarkerBasedPredictor
from promptolution.tasks.classification_tasks import ClassificationTask
from promptolution.utils.callbacks import BaseCallback
from promptolution.utils.prompt import Prompt
from promptolution.utils.prompt_creation import create_prompt_variation

OPTIMIZERS = {"capo": CAPO, "opro": OPRO, "evopromptga": EvoPromptGA}
MAX_STEPS = 200


class CountingLLM(APILLM):
    """APILLM that counts the prompts it sends (one API call each)."""

    calls = 0

    def _get_response(self, prompts: list[str], system_prompts: list[str]) -> list[str]:
        self.calls += len(prompts)
        return super()._get_response(prompts, system_prompts)


class CallBudget(BaseCallback):
    """Stops after the step in which the task LLM reached `budget` calls."""

    def __init__(self, llm: CountingLLM, budget: int) -> None:
        super().__init__()
        self.llm, self.budget, self.steps = llm, budget, 0

    def on_step_end(self, optimizer: Any) -> bool:
        self.steps += 1
        return self.llm.calls < self.budget


def make_llm(url: str, max_tokens: int, temperature: float) -> CountingLLM:
    return CountingLLM(
        api_url=url,
        model_id="local",
        api_key="none",
        max_concurrent_calls=2,
        max_tokens=max_tokens,
        call_kwargs={"temperature": temperature},
    )


def make_task(cfg: Config) -> ClassificationTask:
    rows = cfg.train + cfg.dev
    df = pd.DataFrame({"x": [r["input"] for r in rows], "y": [r["target"] for r in rows]})
    choices = cfg.choices

    def metric(ys: list[str], preds: list[str]) -> float:
        return choice_score(str(preds[0]), str(ys[0]), choices)

    return ClassificationTask(
        df,
        task_description=cfg.seed_prompt,
        x_column="x",
        y_column="y",
        eval_strategy="sequential_block",
        seed=cfg.seed,
        metric=metric,
    )


def run_test(cfg: Config, prompt: Prompt) -> tuple[dict[str, str], dict[str, str]]:
    llm = make_llm(cfg.urls["test"], cfg.task_max_tokens, 0.0)
    predictor = MarkerBasedPredictor(llm)
    xs = [r["input"] for r in cfg.test]
    preds, seqs = predictor.predict([prompt.construct_prompt()] * len(xs), xs)
    ids = [r["id"] for r in cfg.test]
    raw = {i: s[len(x) + 1 :] for i, x, s in zip(ids, xs, seqs, strict=True)}
    return dict(zip(ids, preds, strict=True)), raw


def optimize(cfg: Config, res: Result) -> tuple[Prompt, dict[str, Any]]:
    task_llm = make_llm(cfg.urls["task"], cfg.task_max_tokens, 0.0)
    meta_llm = make_llm(cfg.urls["meta"], cfg.meta_max_tokens, 0.7)
    variations = create_prompt_variation([cfg.seed_prompt] * 3, meta_llm)
    initial = [cfg.seed_prompt, *variations]
    res.note(f"initial population (seed + create_prompt_variation x3): {initial}")
    budget = CallBudget(task_llm, cfg.budget)
    opt = OPTIMIZERS[cfg.optimizer](
        predictor=MarkerBasedPredictor(task_llm),
        task=make_task(cfg),
        meta_llm=meta_llm,
        initial_prompts=initial,
        callbacks=[budget],
    )
    res.note(f"{type(opt).__name__}(n_steps={MAX_STEPS}, stop when task calls >= {cfg.budget})")
    prompts = opt.optimize(n_steps=MAX_STEPS)
    scores = [float(s) for s in list(opt.scores)] if len(opt.scores) == len(prompts) else []
    best = prompts[max(range(len(prompts)), key=scores.__getitem__)] if scores else prompts[0]
    info = {
        "steps": budget.steps,
        "task_llm_calls": task_llm.calls,
        "meta_llm_calls": meta_llm.calls,
        "final_population": [p.construct_prompt() for p in prompts],
        "final_scores": scores,
    }
    return best, info


def main() -> None:
    cfg = load_config()
    res = Result(cfg, version("promptolution"))
    try:
        out, raw = timed(res, "test_seed", lambda: run_test(cfg, Prompt(cfg.seed_prompt)))
    except Exception:
        finish(res, "crashed", traceback.format_exc())
    res.set(test_outputs_seed=out, test_raw_seed=raw)
    status, value, error = timed(
        res, "optimize", lambda: run_with_timeout(lambda: optimize(cfg, res), cfg.opt_timeout)
    )
    if status != "ok":
        finish(res, status, error)
    best, info = value
    res.set(best_prompt=best.construct_prompt(), optimizer_info=info)
    out, raw = timed(res, "test_best", lambda: run_test(cfg, best))
    res.set(test_outputs_best=out, test_raw_best=raw)
    finish(res, "ok")


if __name__ == "__main__":
    main()
