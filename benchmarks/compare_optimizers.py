"""Every optimizer on BIG-bench tasks with the embedded model in every role, the same
budget of task-model calls, scored on the test split (issue: compare table).

    .venv/bin/python benchmarks/compare_optimizers.py --tasks navigate,implicatures \\
        --seeds 0 --task-calls 150 --optimizer-calls 40 --test-limit 100

Runs `promptascent.compare` per task (each run recorded under the runs folder), writes
benchmarks/results/compare_optimizers.json and prints a markdown table for BENCHMARKS.md.
A task is examples/tasks/<name>.yaml, or else the converted BIG-bench split folder
--splits/<name> (benchmarks/bigbench_convert.py) with navigate.yaml's settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from _common import RESULTS, ROOT, machine

import promptascent
from promptascent.config.task import load_task
from promptascent.data.example import Example
from promptascent.evaluation.baseline import majority_baseline
from promptascent.evaluation.stats import paired_difference
from promptascent.runner import RunSettings, plan
from promptascent.store.run_store import RunStore

OPTIMIZERS = "random,ape,opro,protegi,evoprompt-ga,evoprompt-de,capo,exemplars"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tasks", default="navigate,implicatures,sports_understanding")
    ap.add_argument("--optimizers", default=OPTIMIZERS)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--task-calls", type=int, default=150)
    ap.add_argument("--optimizer-calls", type=int, default=40)
    ap.add_argument("--test-limit", type=int, default=100)
    ap.add_argument(
        "--task-max-tokens",
        type=int,
        default=None,
        help="override the task files' task_params.max_tokens (the peers benchmark used 64)",
    )
    ap.add_argument(
        "--scoring", default=None, help="generate, likelihood or auto (overrides the task files)"
    )
    ap.add_argument(
        "--calibration", default=None, help="none, contextual or pmi (likelihood scoring)"
    )
    ap.add_argument(
        "--select-by", default=None, help="accuracy or loss (likelihood scoring's selection)"
    )
    ap.add_argument("--out", default="compare_optimizers.json", help="file in benchmarks/results")
    ap.add_argument(
        "--splits",
        type=Path,
        default=Path.home() / ".cache" / "promptascent" / "bigbench-splits",
        help="converted BIG-bench split folders, for tasks not in examples/tasks",
    )
    ap.add_argument("--runs-dir", default="/tmp/pa-compare/runs")
    ap.add_argument("--cache-dir", default="/tmp/pa-compare/cache")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="keep the (task, optimizer, seed) runs already in --out and run only the others",
    )
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.optimizers.split(",")
    settings = RunSettings(runs_dir=Path(args.runs_dir), cache_dir=Path(args.cache_dir))
    path = RESULTS / args.out
    rows: list[dict] = []
    spent = 0.0
    if args.resume and path.exists():
        before = json.loads(path.read_text())
        rows, spent = before["rows"], before["wall_seconds"]
    done = {(r["task"], r["optimizer"], r["seed"]) for r in rows}
    began = time.time()
    # Seeds outer: a run cut short still holds whole seeds over every task. One
    # optimizer at a time, each written as it ends, so a benchmark cut short (a
    # session's end) keeps every finished run and resumes at the next.
    for seed in seeds:
        for task_name in args.tasks.split(","):
            todo = [n for n in names if (task_name, n, seed) not in done]
            if not todo:
                continue
            task = load_task(task_file(task_name, args.splits, Path(args.runs_dir)))
            data = task.data.model_copy(update={"limits": {"test": args.test_limit}})
            update: dict = {"data": data, "budget": {}}
            if args.task_max_tokens is not None:
                update["task_params"] = task.task_params.model_copy(
                    update={"max_tokens": args.task_max_tokens}
                )
            evaluation = {
                k: v
                for k, v in (
                    ("scoring", args.scoring),
                    ("calibration", args.calibration),
                    ("select_by", args.select_by),
                )
                if v is not None
            }
            if evaluation:
                update["evaluation"] = task.evaluation.model_copy(update=evaluation)
            task = task.model_copy(update=update)
            examples = {ex.id: ex for ex in plan(task).data.test or ()}
            for name in todo:
                comparison = promptascent.compare(
                    task,
                    [name],
                    budget={
                        "task_calls": args.task_calls,
                        "optimizer_calls": args.optimizer_calls,
                    },
                    seeds=[seed],
                    settings=settings,
                )
                for row in comparison.to_dict()["rows"]:
                    row["vs_majority"] = vs_majority(
                        settings.runs_dir / row["run_id"], row, examples
                    )
                    rows.append({"task": task_name, **row})
                    keys = ("task", "optimizer", "seed", "status")
                    print(json.dumps({k: rows[-1][k] for k in keys}), flush=True)
                write(path, args, seeds, spent + time.time() - began, rows)
    print(table(rows))
    print()
    print(summary(rows))
    print()
    print(majority_summary(rows))
    return 0


def task_file(name: str, splits: Path, runs_dir: Path) -> Path:
    """examples/tasks/<name>.yaml, or a task file written under the runs folder for the
    split folder splits/<name>: navigate.yaml's models, parameters and seed."""
    example = ROOT / "examples" / "tasks" / f"{name}.yaml"
    if example.exists():
        return example
    folder = splits / name
    if not (folder / "task.json").is_file():
        raise SystemExit(f"{name}: no examples/tasks/{name}.yaml and no split folder {folder}")
    template = (ROOT / "examples" / "tasks" / "navigate.yaml").read_text(encoding="utf-8")
    text = (
        template.replace("BIG-bench navigate", f"BIG-bench {name}")
        .replace("see examples/data/README.md", "converted by benchmarks/bigbench_convert.py")
        .replace("name: navigate", f"name: {name}")
        .replace("folder: ../data/navigate", f"folder: {json.dumps(str(folder.resolve()))}")
    )
    out = runs_dir / "tasks" / f"{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def write(
    path: Path, args: argparse.Namespace, seeds: list[int], wall: float, rows: list[dict]
) -> None:
    """The results file as it stands: the settings, the wall time so far and every row."""
    out = {
        "machine": machine(),
        "command": " ".join(sys.argv),
        "task_calls": args.task_calls,
        "optimizer_calls": args.optimizer_calls,
        "test_limit": args.test_limit,
        "task_max_tokens": args.task_max_tokens,
        "scoring": args.scoring,
        "calibration": args.calibration,
        "select_by": args.select_by,
        "seeds": seeds,
        "wall_seconds": wall,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


def majority_summary(rows: list[dict]) -> str:
    """Per task: the majority-class rate, the best test accuracy of any run with its CI,
    and how many runs beat always answering the majority class by a paired test."""
    lines = [
        "| task | majority rate | best run | best test [95% CI] | runs above majority "
        "(paired, CI > 0) |",
        "|---|---|---|---|---|",
    ]
    for task in dict.fromkeys(r["task"] for r in rows):
        mine = [r for r in rows if r["task"] == task and r["test_best"] and r["vs_majority"]]
        if not mine:
            continue
        top = max(mine, key=lambda r: r["test_best"]["mean"])
        best = top["test_best"]
        above = [r for r in mine if r["vs_majority"]["above"]]
        names = ", ".join(f"{r['optimizer']}/{r['seed']}" for r in above) or "none"
        lines.append(
            f"| {task} | {top['vs_majority']['rate']:.3f} | {top['optimizer']}/{top['seed']} "
            f"| {best['mean']:.3f} [{best['ci_low']:.3f}, {best['ci_high']:.3f}] "
            f"| {len(above)} of {len(mine)}: {names} |"
        )
    return "\n".join(lines)


def vs_majority(run_dir: Path, row: dict, examples: dict[str, Example]) -> dict | None:
    """The best prompt's test results against the constant baseline on the examples it
    scored (evaluation/baseline.py: always the most common target, or, where the
    choices vary between examples, always the option at the answer's most common
    position), example by example: paired difference with its 95% CI and the sign-flip
    p (None when the run has no test scores)."""
    if not row["test_best"]:
        return None
    store = RunStore.open_existing(run_dir)
    try:
        results = store.evaluations(row["best_candidate"], "test")
    finally:
        store.close()
    kept = [r for r in results if r["score"] is not None]
    scored = [examples[r["example_id"]] for r in kept]
    best = [float(r["score"]) for r in kept]
    baseline = majority_baseline([ex.target for ex in scored], [ex.choices for ex in scored])
    if baseline is None:
        return None
    d = paired_difference(list(baseline.scores), best, seed=0, confidence=0.95)
    return {
        "majority": baseline.answer,
        "rate": baseline.rate,
        "mean": d.mean_diff,
        "ci_low": d.low,
        "ci_high": d.high,
        "p_value": d.p_value,
        "above": d.low > 0,
    }


def summary(rows: list[dict]) -> str:
    """Per optimizer over every (task, seed): mean test difference to the seed prompt,
    and how often its 95% CI lies above 0, below 0, or spans it."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        if r["difference"]:
            by.setdefault(r["optimizer"], []).append(r["difference"])
    lines = [
        "| optimizer | runs | mean best - seed | CI above 0 | CI spans 0 | CI below 0 |",
        "|---|---|---|---|---|---|",
    ]
    for name, ds in by.items():
        above = sum(d["ci_low"] > 0 for d in ds)
        below = sum(d["ci_high"] < 0 for d in ds)
        mean = sum(d["mean"] for d in ds) / len(ds)
        lines.append(
            f"| {name} | {len(ds)} | {mean:+.3f} | {above} | {len(ds) - above - below} | {below} |"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None or x != x else f"{x:.3f}"

    head = (
        "| task | optimizer | seed | test: seed prompt | test: best [95% CI] "
        "| best - seed [95% CI] | unparsed (best) | task calls | optimizer calls "
        "| wall s | status |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base, best, d = r["test_seed"], r["test_best"], r["difference"]
        cells = [r["task"], r["optimizer"], str(r["seed"])]
        if best and base and d:
            cells += [
                f(base["mean"]),
                f"{f(best['mean'])} [{f(best['ci_low'])}, {f(best['ci_high'])}]",
                f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
                str(best["unparsed"]),
            ]
        else:
            cells += ["-", "-", "-", "-"]
        cells += [
            str(int(r["task_calls"])),
            str(int(r["optimizer_calls"])),
            f"{r['wall_seconds']:.0f}",
            r["status"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
