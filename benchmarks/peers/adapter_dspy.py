"""DSPy adapter (MIPROv2 and dspy.GEPA): run inside the dspy venv as `python adapter_dspy.py CFG`.

The program is one dspy.Predict over the signature "input -> answer" whose instructions
are the seed prompt. Every LM is dspy.LM("openai/local") pointed at the counting proxy:
the task LM at the optimize-phase "task" URL, the prompt / reflection LM at the "meta"
URL, and a separate test LM at the test URL. DSPy's disk cache is off (so no run reuses
another's replies); its in-memory cache stays on, as in a user's process.

The raw test output is the parsed `answer` field. When DSPy's adapters cannot parse the
model's reply, the prediction raises; that example's output is recorded as "" (scored as
unparsed) and the error text is kept in `test_errors_*`.
"""

from __future__ import annotations

import traceback
from typing import Any

import dspy
from adapter_common import (
    Config,
    Result,
    choice_score,
    finish,
    load_config,
    run_with_timeout,
    timed,
)


def make_lm(url: str, max_tokens: int, temperature: float) -> dspy.LM:
    return dspy.LM(
        "openai/local",
        api_base=url,
        api_key="none",
        max_tokens=max_tokens,
        temperature=temperature,
        cache=False,
    )


def to_examples(rows: list[dict[str, Any]]) -> list[dspy.Example]:
    return [dspy.Example(input=r["input"], answer=r["target"]).with_inputs("input") for r in rows]


def seed_program(cfg: Config) -> dspy.Module:
    signature = dspy.Signature("input -> answer", instructions=cfg.seed_prompt)
    return dspy.Predict(signature)


def describe(program: dspy.Module) -> str:
    """The full prompt state: each predictor's instructions and its demos."""
    parts = []
    for name, pred in program.named_predictors():
        parts.append(f"[{name}] instructions:\n{pred.signature.instructions}")
        for i, demo in enumerate(pred.demos):
            fields = {k: v for k, v in dict(demo).items() if not k.startswith("_")}
            parts.append(f"[{name}] demo {i + 1}: {fields}")
    return "\n".join(parts)


def run_test(program: dspy.Module, lm: dspy.LM, rows: list[dict[str, Any]]) -> tuple[dict, dict]:
    outputs: dict[str, str] = {}
    errors: dict[str, str] = {}
    with dspy.context(lm=lm):
        for r in rows:
            try:
                outputs[r["id"]] = str(program(input=r["input"]).answer or "")
            except Exception as e:
                outputs[r["id"]] = ""
                errors[r["id"]] = f"{type(e).__name__}: {str(e)[:500]}"
    return outputs, errors


def make_metric(cfg: Config, feedback: bool) -> Any:
    choices = cfg.choices

    def metric(gold: Any, pred: Any, trace: Any = None) -> float:
        return choice_score(str(getattr(pred, "answer", "") or ""), gold.answer, choices)

    def gepa_metric(
        gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> float:
        return metric(gold, pred, trace)

    return gepa_metric if feedback else metric


def mipro_trials(cfg: Config, minibatch: int) -> int:
    """Trials that fit the budget: each costs a minibatch, plus a full dev eval every 5."""
    per_trial = minibatch + len(cfg.dev) / 5
    return max(2, int((cfg.budget - len(cfg.dev)) // per_trial))


def optimize(cfg: Config, res: Result, task_lm: dspy.LM, meta_lm: dspy.LM) -> dspy.Module:
    train, dev = to_examples(cfg.train), to_examples(cfg.dev)
    student = seed_program(cfg)
    if cfg.optimizer == "miprov2":
        minibatch = min(35, len(dev))
        trials = mipro_trials(cfg, minibatch)
        res.note(f"MIPROv2(num_candidates=6, num_trials={trials}, minibatch={minibatch})")
        tp = dspy.MIPROv2(
            metric=make_metric(cfg, feedback=False),
            prompt_model=meta_lm,
            task_model=task_lm,
            auto=None,
            num_candidates=6,
            num_threads=1,
            seed=cfg.seed,
        )
        return tp.compile(
            student, trainset=train, valset=dev, num_trials=trials, minibatch_size=minibatch
        )
    if cfg.optimizer == "gepa":
        res.note(f"dspy.GEPA(max_metric_calls={cfg.budget}, reflection_lm=same model)")
        tp = dspy.GEPA(
            metric=make_metric(cfg, feedback=True),
            max_metric_calls=cfg.budget,
            reflection_lm=meta_lm,
            num_threads=1,
            seed=cfg.seed,
        )
        return tp.compile(student, trainset=train, valset=dev)
    raise ValueError(f"unknown DSPy optimizer {cfg.optimizer!r}")


def main() -> None:
    cfg = load_config()
    res = Result(cfg, dspy.__version__)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    task_lm = make_lm(cfg.urls["task"], cfg.task_max_tokens, 0.0)
    meta_lm = make_lm(cfg.urls["meta"], cfg.meta_max_tokens, 0.7)
    test_lm = make_lm(cfg.urls["test"], cfg.task_max_tokens, 0.0)
    dspy.configure(lm=task_lm)
    seed = seed_program(cfg)
    try:
        out, err = timed(res, "test_seed", lambda: run_test(seed, test_lm, cfg.test))
    except Exception:
        finish(res, "crashed", traceback.format_exc())
    res.set(test_outputs_seed=out, test_errors_seed=err)
    status, best, error = timed(
        res,
        "optimize",
        lambda: run_with_timeout(lambda: optimize(cfg, res, task_lm, meta_lm), cfg.opt_timeout),
    )
    if status != "ok":
        finish(res, status, error)
    res.set(best_prompt=describe(best))
    out, err = timed(res, "test_best", lambda: run_test(best, test_lm, cfg.test))
    res.set(test_outputs_best=out, test_errors_best=err)
    finish(res, "ok")


if __name__ == "__main__":
    main()
