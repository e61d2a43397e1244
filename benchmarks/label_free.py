"""Optimizing without labels (issue: label-free benchmark), SmolLM2-135M in every role.

For each BIG-bench task, the labels are hidden from the optimizer and used only to
score the test split afterwards:

- `spo`: SPO on the unlabelled train inputs, requirements = the task's description;
- `describe`: the description-only pipeline (a one-line description naming the answers:
  intent analysis, synthetic data, the chosen optimizer), its best prompt then scored
  on the real test split;
- `ape`, `exemplars` (any optimizer name): that labelled optimizer given as many
  task-model calls as SPO spent in all roles (the SPO paper's claim to test: comparable
  quality at a fraction of the cost), row `NAME@spo-budget`;
- `NAME@N` (e.g. `exemplars@300`): the labelled optimizer NAME at N task calls, the
  describe pipeline's budget, to compare it with the best labelled method.

Plus one open-ended task (benchmarks/data/one_line_summary.jsonl): SPO on 6 sample
texts, then seed vs best judged pairwise (4 votes, A/B swapped) on 10 held-out texts.

    cd benchmarks && ../.venv/bin/python label_free.py \
        --tasks navigate,sports_understanding,implicatures

Writes benchmarks/results/label_free.json and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, ROOT, machine

import promptascent
from promptascent.config.task import load_task, task_from_dict
from promptascent.data.loaders import dataset_from_rows
from promptascent.describe.pipeline import prepare_described
from promptascent.evaluate import evaluate_prompt
from promptascent.evaluation.evaluator import Evaluator
from promptascent.evaluation.result import EvaluationResult, compare
from promptascent.llm.budget import Budget
from promptascent.llm.hub import ModelHub
from promptascent.metrics.judge import JudgeStats, PairwiseJudge
from promptascent.prompts.prompt import Prompt
from promptascent.runner import Runner, RunResult, RunSettings, plan

# What a user would type: the task in one line, naming the answers.
DESCRIPTIONS = {
    "navigate": "Given navigation instructions, answer True if following them returns "
    "you to the starting point, otherwise False.",
    "sports_understanding": "Decide whether a sentence about sports is plausible or implausible.",
    "implicatures": "Decide whether Speaker 2's answer to Speaker 1 means yes or no.",
    "snarks": "Given two sentences (a) and (b), say which one is sarcastic: (a) or (b).",
}
SUMMARY_REQUIREMENTS = (
    "One sentence of at most 20 words. Keep the main fact; no preamble such as "
    '"Here is a summary", no lists, no opinions.'
)


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def score_row(name: str, seed: EvaluationResult, best: EvaluationResult) -> dict[str, Any]:
    d = compare(seed, best)
    return {
        "method": name,
        "test_seed": seed.summary(),
        "test_best": best.summary(),
        "difference": {"mean": d.mean_diff, "ci_low": d.low, "ci_high": d.high, "n": d.n},
    }


def usage_of(result: RunResult) -> dict[str, dict[str, float]]:
    return {
        role: {"calls": u["calls"], "tokens": u["tokens"]}
        for role, u in result.search_usage.items()
    }


def hidden_label_task(name: str, work: Path, test_limit: int) -> tuple[Any, dict[str, Any]]:
    """The labelled task (for scoring) and an SPO task on the same inputs with the train
    labels removed (choices kept: they are the question's form, not its answer)."""
    folder = ROOT / "examples" / "data" / name
    info = json.loads((folder / "task.json").read_text())
    labelled = load_task(ROOT / "examples" / "tasks" / f"{name}.yaml")
    data = labelled.data.model_copy(update={"limits": {"test": test_limit}})
    labelled = labelled.model_copy(update={"data": data, "budget": {}})
    train = [
        {k: v for k, v in r.items() if k != "target"} for r in read_rows(folder / "train.jsonl")
    ]
    test = read_rows(folder / "test.jsonl")[:test_limit]
    spo = {
        "name": f"{name}-spo",
        "description": info["description"],
        "requirements": info["description"],
        "data": {
            "train": str(write_rows(work / name / "train.jsonl", train)),
            "test": str(write_rows(work / name / "test.jsonl", test)),
            "dev_from_train": False,
        },
        "seed_prompt": info["seed_prompt"],
        "metric": "choice_accuracy",
        "models": {"task": "embedded", "optimizer": "embedded", "judge": "embedded"},
        "task_params": {"max_tokens": 32},
        "optimizer": {"name": "spo"},
        "seed": 0,
    }
    return labelled, spo


def labelled_score(labelled: Any, prompt: Prompt, settings: RunSettings) -> EvaluationResult:
    result, _ = evaluate_prompt(plan(labelled), prompt, "test", settings)
    return result


def run_task(name: str, work: Path, settings: RunSettings, args: argparse.Namespace) -> list[dict]:
    labelled, spo_task = hidden_label_task(name, work, args.test_limit)
    methods = args.methods.split(",")
    rows: list[dict[str, Any]] = []
    began = time.time()
    spo = promptascent.optimize(task_from_dict(spo_task), settings=settings)
    assert spo.test_seed is not None and spo.test_best is not None
    spo_calls = int(sum(u["calls"] for u in spo.search_usage.values()))
    rows.append(
        {
            **score_row("spo", spo.test_seed, spo.test_best),
            "usage": usage_of(spo),
            "wall_seconds": time.time() - began,
            "judge": spo.judge,
            "best_prompt": spo.best.prompt.instruction,
            "status": spo.status,
        }
    )
    for method in methods:
        if method == "describe":
            rows.append(describe_row(name, labelled, work, settings, args))
        elif "@" in method:
            optimizer, calls = method.split("@")
            rows.append(
                labelled_row(labelled, optimizer, int(calls), f"{method} task calls", settings)
            )
        elif method != "spo":
            calls = max(60, spo_calls)
            label = f"{method}@spo-budget ({calls} task calls)"
            rows.append(labelled_row(labelled, method, calls, label, settings))
    for r in rows:
        r["task"] = name
        print(json.dumps({k: r[k] for k in ("task", "method", "status")}), flush=True)
    return rows


def labelled_row(
    labelled: Any, optimizer: str, task_calls: int, label: str, settings: RunSettings
) -> dict[str, Any]:
    """A labelled optimizer at the given number of task calls."""
    began = time.time()
    result = promptascent.optimize(
        labelled,
        optimizer=optimizer,
        budget={"task_calls": task_calls, "optimizer_calls": 20},
        settings=settings,
    )
    assert result.test_seed is not None and result.test_best is not None
    return {
        **score_row(label, result.test_seed, result.test_best),
        "usage": usage_of(result),
        "wall_seconds": time.time() - began,
        "best_prompt": result.best.prompt.instruction,
        "status": result.status,
    }


def describe_row(
    name: str, labelled: Any, work: Path, settings: RunSettings, args: argparse.Namespace
) -> dict[str, Any]:
    """The description pipeline; its best prompt scored on the real test split."""
    seed_test = labelled_score(labelled, plan(labelled).seed_prompt, settings)
    began = time.time()
    prepared = prepare_described(
        DESCRIPTIONS[name],
        out_dir=work / f"{name}-described",
        n=args.examples,
        settings=settings,
        budget=Budget(task_calls=args.describe_task_calls, optimizer_calls=40),
        seed=0,
    )
    described = Runner(prepared.plan, settings).run()
    best_test = labelled_score(labelled, described.best.prompt, settings)
    usage = usage_of(described)
    usage["synth (optimizer)"] = {
        "calls": prepared.outcome.usage["calls"],
        "tokens": prepared.outcome.usage["tokens"],
    }
    return {
        **score_row("describe", seed_test, best_test),
        "usage": usage,
        "wall_seconds": time.time() - began,
        "optimizer_chosen": prepared.strategy.name,
        "strategy_reason": prepared.strategy.reason,
        "draft_notes": list(prepared.draft.notes),
        "synth": {
            "kept": len(prepared.outcome.synth.examples),
            "dropped": dict(prepared.outcome.synth.dropped),
            "stopped_by": prepared.outcome.synth.stopped_by,
        },
        "best_prompt": described.best.prompt.instruction,
        "status": described.status,
    }


def open_ended(work: Path, settings: RunSettings) -> dict[str, Any]:
    """SPO on the summary task; seed vs best judged pairwise on held-out texts."""
    rows = read_rows(ROOT / "benchmarks" / "data" / "one_line_summary.jsonl")
    samples, held_out = rows[:6], rows[6:]
    task = task_from_dict(
        {
            "name": "one-line-summary",
            "requirements": SUMMARY_REQUIREMENTS,
            "data": {"examples": samples, "dev_from_train": False},
            "seed_prompt": "Summarize the text.",
            "metric": {"name": "judge", "rubric": SUMMARY_REQUIREMENTS},
            "models": {"task": "embedded", "optimizer": "embedded", "judge": "embedded"},
            "task_params": {"max_tokens": 64},
            "optimizer": {"name": "spo"},
            "seed": 0,
        }
    )
    began = time.time()
    spo = promptascent.optimize(task, settings=settings)
    p = plan(task)
    hub = ModelHub(p.task.models, cache_dir=settings.cache_dir).open()
    guard = hub.guard(Budget())
    task_client, judge_client = (hub.client(role, guard) for role in ("task", "judge"))
    evaluator = Evaluator(task_client, p.metric, params=p.task_params)
    examples = list(dataset_from_rows(held_out, name="held-out", where="one_line_summary.jsonl"))
    seed_out = evaluator.generate(spo.seed.prompt, examples)
    best_out = evaluator.generate(spo.best.prompt, examples)
    stats = JudgeStats()
    judge = PairwiseJudge(judge_client, stats=stats)
    wins = losses = ties = 0
    for ex, a, b in zip(examples, seed_out.results, best_out.results, strict=True):
        pref = judge.compare(SUMMARY_REQUIREMENTS, [ex.input_text], [a.output], [b.output])
        wins += pref.winner == "B"
        losses += pref.winner == "A"
        ties += pref.winner == "tie"
    n = len(examples)
    return {
        "task": "one-line-summary (open-ended)",
        "best_is_seed": spo.best.id == spo.seed.id,
        "best_prompt": spo.best.prompt.instruction,
        "held_out": n,
        "best_vs_seed": {
            "wins": wins,
            "losses": losses,
            "ties": ties,
            "win_rate": (wins + ties / 2) / n,
        },
        "held_out_judge": stats.to_dict(),
        "search_judge": spo.judge,
        "usage": usage_of(spo),
        "judge_calls_held_out": hub.meter.to_dict()["judge"]["calls"],
        "wall_seconds": time.time() - began,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", default="navigate,sports_understanding,implicatures")
    ap.add_argument("--test-limit", type=int, default=100)
    ap.add_argument("--examples", type=int, default=40, help="synthetic examples (describe)")
    ap.add_argument("--describe-task-calls", type=int, default=300)
    ap.add_argument("--work", default="/tmp/pa-label-free")
    ap.add_argument("--out", default="label_free.json", help="file in benchmarks/results")
    ap.add_argument("--skip-open-ended", action="store_true")
    ap.add_argument(
        "--methods",
        default="spo,ape,describe",
        help="spo always runs; add describe, labelled optimizers at SPO's budget (ape, "
        "exemplars, ...) or at N task calls (exemplars@300)",
    )
    args = ap.parse_args()
    work = Path(args.work)
    settings = RunSettings(runs_dir=work / "runs", cache_dir=work / "cache")
    began = time.time()
    rows: list[dict[str, Any]] = []
    for name in args.tasks.split(","):
        rows += run_task(name, work, settings, args)
    summary = None if args.skip_open_ended else open_ended(work, settings)
    out = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "wall_seconds": time.time() - began,
        "rows": rows,
        "open_ended": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(table(rows))
    if summary:
        print(json.dumps(summary, indent=2))
    return 0


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | method | test: seed | test: best [95% CI] | best - seed [95% CI] | "
        "calls per role (search) | tokens (all roles) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, b, d = r["test_seed"], r["test_best"], r["difference"]
        calls = ", ".join(f"{k} {int(v['calls'])}" for k, v in r["usage"].items() if v["calls"])
        tokens = int(sum(v["tokens"] for v in r["usage"].values()))
        lines.append(
            f"| {r['task']} | {r['method']} | {s['mean']:.3f} | {b['mean']:.3f} "
            f"[{b['ci_low']:.3f}, {b['ci_high']:.3f}] | {d['mean']:+.3f} "
            f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] | {calls} | {tokens} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
