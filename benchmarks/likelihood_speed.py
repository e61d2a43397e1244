"""Likelihood scoring against generation on the embedded model: examples per second and
tokens evaluated per example, same prompts, same tasks, same examples.

For each task (two-choice BIG-bench tasks from ../shared/datasets by default) and each
concurrency (1 instance / Evaluator concurrency 1, and 2 / 2): the Evaluator scores
the task's own prompt on the first --examples test examples, once by generation (the
task file's max_tokens) and once by likelihood, with no response or evaluation cache, so
every example is a model call. The two sides alternate (generation first in odd
repetitions); each pass records the CPU other processes used meanwhile (a busy machine
makes a timing untrustworthy: such passes are repeated, up to --retries). Figures:
examples/s (median, min, max), the likelihood/generation ratio of medians, tokens the
model evaluated per example (prompt tokens not reused from an earlier prompt, plus
generated tokens), and the accuracy of each side.

    .venv/bin/python benchmarks/likelihood_speed.py [--examples 40] [--reps 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, CpuMonitor, log, machine, spread, table, wait_quiet, write_result

from promptascent.config.task import task_from_dict
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.likelihood import LikelihoodScoring
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.usage import UsageMeter
from promptascent.runner import plan

DATASETS = ROOT.parent / "shared" / "datasets" / "bigbench"
N_CTX = 4096


def side(instances: int, p: Any, likelihood: bool) -> tuple[Evaluator, EmbeddedLLM]:
    backend = EmbeddedLLM(n_ctx=N_CTX, instances=instances, n_threads=1)
    meter = UsageMeter()
    client = ModelClient("task", backend, meter=meter, guard=BudgetGuard(Budget(), meter))
    evaluator = Evaluator(
        client,
        p.metric,
        params=p.task_params,
        concurrency=instances,
        cache=None,
        likelihood=LikelihoodScoring() if likelihood else None,
    )
    return evaluator, backend


def one_pass(evaluator: Evaluator, backend: EmbeddedLLM, p: Any, examples: list[Any]) -> dict:
    before = backend.evaluated_tokens
    with CpuMonitor() as mon:
        res = evaluator.evaluate(p.seed_prompt, examples)
    if res.errors:
        raise RuntimeError(f"{res.errors} errors: {[r.error for r in res.results if r.error][:2]}")
    return {
        "seconds": mon.wall,
        "foreign_cores": mon.foreign_cores,
        "examples_per_s": len(examples) / mon.wall,
        "tokens_per_example": (backend.evaluated_tokens - before) / len(examples),
        "accuracy": res.mean,
        "unparsed": res.unparsed,
    }


def case(task: str, instances: int, args: argparse.Namespace) -> dict[str, Any]:
    spec = task_from_dict(
        {
            "name": task,
            "data": {"folder": str(DATASETS / task), "limits": {"test": args.examples}},
            "task_params": {"max_tokens": args.max_tokens},
            "metric": "choice_accuracy",
        }
    )
    p = plan(spec)
    examples = list(p.data.test)
    sides = {name: side(instances, p, name == "likelihood") for name in ("generate", "likelihood")}
    try:
        for ev, backend in sides.values():  # warm-up: load the weights, fill caches
            one_pass(ev, backend, p, examples[: args.warmup])
        runs: dict[str, list[dict[str, Any]]] = {"generate": [], "likelihood": []}
        discarded = 0
        rep = 0
        while min(len(v) for v in runs.values()) < args.reps:
            rep += 1
            wait_quiet(args.quiet_wait)
            order = ["generate", "likelihood"] if rep % 2 else ["likelihood", "generate"]
            passes = {name: one_pass(*sides[name], p, examples) for name in order}
            idle = 2 - instances  # cores the case leaves free
            busy = any(x["foreign_cores"] > idle + args.max_foreign for x in passes.values())
            if busy and discarded < args.retries:
                discarded += 1
                log(f"[{task} x{instances}] pass {rep} discarded: the machine was busy")
                continue
            for name, x in passes.items():
                runs[name].append(x)
            log(
                f"[{task} x{instances}] rep {rep}: "
                + ", ".join(f"{n} {x['examples_per_s']:.2f} ex/s" for n, x in passes.items())
            )
    finally:
        for _, backend in sides.values():
            backend.close()
    out: dict[str, Any] = {"task": task, "instances": instances, "n": len(examples)}
    for name, xs in runs.items():
        out[name] = {
            "examples_per_s": spread([x["examples_per_s"] for x in xs]),
            "tokens_per_example": statistics.median(x["tokens_per_example"] for x in xs),
            "accuracy": xs[0]["accuracy"],
            "unparsed": xs[0]["unparsed"],
            "foreign_cores": [round(x["foreign_cores"], 2) for x in xs],
        }
    out["speedup"] = (
        out["likelihood"]["examples_per_s"]["median"] / out["generate"]["examples_per_s"]["median"]
    )
    out["discarded_passes"] = discarded
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="sports_understanding,navigate")
    ap.add_argument("--examples", type=int, default=40)
    ap.add_argument("--max-tokens", type=int, default=32, help="generation's max_tokens")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--instances", default="1,2")
    ap.add_argument("--max-foreign", type=float, default=0.3)
    ap.add_argument("--retries", type=int, default=3)
    ap.add_argument("--quiet-wait", type=float, default=60)
    args = ap.parse_args()
    info = machine()
    cases = [
        case(task, int(n), args)
        for task in args.tasks.split(",")
        for n in args.instances.split(",")
    ]
    rows = [
        [
            c["task"],
            str(c["instances"]),
            f"{c['generate']['examples_per_s']['median']:.2f}",
            f"{c['likelihood']['examples_per_s']['median']:.2f}",
            f"{c['speedup']:.1f}x",
            f"{c['generate']['tokens_per_example']:.0f}",
            f"{c['likelihood']['tokens_per_example']:.0f}",
            f"{c['generate']['accuracy']:.2f} ({c['generate']['unparsed']} unparsed)",
            f"{c['likelihood']['accuracy']:.2f}",
        ]
        for c in cases
    ]
    header = ["task", "conc", "gen ex/s", "lik ex/s", "speedup", "gen tok/ex", "lik tok/ex",
              "gen acc", "lik acc"]  # fmt: skip
    print(table(rows, header))
    path = write_result(
        "likelihood_speed",
        {"machine": info, "args": vars(args), "cases": cases, "table": table(rows, header)},
    )
    log(f"written to {path}")


if __name__ == "__main__":
    main()
