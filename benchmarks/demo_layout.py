"""Where a prompt's demonstrations put the instruction: a probe for planning.

promptascent renders each demonstration as a user turn made of the whole instruction
filled with the demo's input (Prompt.render: "repeat"). DSPy's and LangChain's few-shot
chat layouts put the instruction once, as the system message, and each demo as a bare
input turn ("system"). This scores two demo-carrying prompts both ways on the
`make demo` task (intent_recognition, likelihood scoring with contextual calibration,
the embedded model, the first 100 test examples, no cache): CAPO's best prompt of the
demo run (benchmarks/results/demo_layout_capo_best_prompt.json) and the task's seed
instruction with the same four demonstrations. Prints and writes per prompt and layout
the accuracy with its CI, the mean loss, the prompt tokens per call, and the paired
difference system - repeat (benchmarks/results/demo_layout.json).

    nice -n 5 .venv/bin/python benchmarks/demo_layout.py
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, machine

from promptascent.config.task import load_task
from promptascent.evaluate import evaluate_prompt
from promptascent.evaluation.result import EvaluationResult, compare
from promptascent.llm.types import Message
from promptascent.planning import plan
from promptascent.prompts.prompt import Prompt
from promptascent.run_settings import RunSettings

BEST = RESULTS / "demo_layout_capo_best_prompt.json"
OUT = RESULTS / "demo_layout.json"
TEST_LIMIT = 100


class SystemLayout(Prompt):
    """The same prompt, rendered with the instruction once as the system message and
    every demo and the example as bare input turns."""

    def render(self, fields: dict[str, str], *, where: str = "") -> tuple[Message, ...]:
        bare = Prompt(instruction="", output_format=self.output_format)
        out = [Message("system", self.user_text({}, where=where).strip() or " ")]
        for demo in self.demos:
            out += [Message("user", bare.user_text(demo.fields)), Message("assistant", demo.output)]
        out.append(Message("user", bare.user_text(fields, where=where)))
        return tuple(out)


def as_system_layout(prompt: Prompt) -> SystemLayout:
    return SystemLayout(prompt.instruction, prompt.system, prompt.demos, prompt.output_format)


def main() -> int:
    task = load_task(ROOT / "examples" / "tasks" / "demo.yaml")
    data = task.data.model_copy(update={"limits": {"test": TEST_LIMIT}})
    p = plan(task.model_copy(update={"data": data}))
    best = Prompt.from_dict(json.loads(BEST.read_text(encoding="utf-8")))
    prompts = {
        "capo best": best,
        "seed instruction + the same demos": p.seed_prompt.with_demos(best.demos),
    }
    # No cache: the two layouts of one prompt share its id (and so its cache entries).
    settings = RunSettings(cache_dir=None, runs_dir=Path("/tmp/demo_layout_runs"))
    rows: list[dict[str, Any]] = []
    for name, prompt in prompts.items():
        scored: dict[str, EvaluationResult] = {}
        for layout, rendered in (("repeat", prompt), ("system", as_system_layout(prompt))):
            result, usage = evaluate_prompt(p, rendered, "test", settings)
            scored[layout] = result
            task_usage = usage["task"]
            row = {
                "prompt": name,
                "layout": layout,
                **result.summary(),
                "mean_loss": result.mean_loss,
                "prompt_tokens_per_call": task_usage["prompt_tokens"] / task_usage["model_calls"],
            }
            rows.append(row)
            print(
                f"{name} | {layout} | {row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
                f" | loss {row['mean_loss']:.3f} | {row['prompt_tokens_per_call']:.0f} tokens/call",
                flush=True,
            )
        d = compare(scored["repeat"], scored["system"])
        rows.append({"prompt": name, "system_minus_repeat": dataclasses.asdict(d)})
        diff = f"{d.mean_diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}] p={d.p_value:.3f}"
        print(f"{name}: system - repeat {diff}")
    OUT.write_text(
        json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
