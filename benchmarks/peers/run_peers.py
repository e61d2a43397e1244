"""Peer prompt optimizers (DSPy, gepa, promptolution) on promptascent's tasks, same model,
same llama.cpp server, same task-call budget, same scorer, every call counted by one proxy.

    /work/main/.venv/bin/python benchmarks/peers/run_peers.py \\
        --tasks navigate,sports_understanding --task-calls 600 --test-limit 100

Each library gets its own venv at a pinned version (venvs.py, made on first use under
~/.cache/promptascent/peers/). Each (library-optimizer, task) runs its adapter in that
venv as a subprocess with a timeout; the adapter writes raw test outputs for the seed
prompt and the optimised prompt, which are scored here with promptascent's
choice_accuracy (bootstrap 95% CIs). Results: benchmarks/results/<--out>; a markdown
table is printed (and `--table-only` reprints it from an existing results file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter as Tally
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "examples" / "data"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import machine  # noqa: E402
from llm_server import llama_server  # noqa: E402
from proxy import Counts, ProxyServer, start_proxy  # noqa: E402
from venvs import LIBS, ensure_venv, installed_version  # noqa: E402

from promptascent.data.example import Example  # noqa: E402
from promptascent.data.loaders import load_jsonl  # noqa: E402
from promptascent.evaluation.stats import bootstrap_ci, paired_difference  # noqa: E402
from promptascent.llm.model_files import default_model_path  # noqa: E402
from promptascent.metrics.registry import get_metric  # noqa: E402

# run name -> (library, optimizer, adapter script)
RUNS: dict[str, tuple[str, str, str]] = {
    "dspy-miprov2": ("dspy", "miprov2", "adapter_dspy.py"),
    "dspy-gepa": ("dspy", "gepa", "adapter_dspy.py"),
    "gepa-gepa": ("gepa", "gepa", "adapter_gepa.py"),
    "promptolution-capo": ("promptolution", "capo", "adapter_promptolution.py"),
    "promptolution-opro": ("promptolution", "opro", "adapter_promptolution.py"),
    "promptolution-evopromptga": ("promptolution", "evopromptga", "adapter_promptolution.py"),
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="navigate,sports_understanding")
    ap.add_argument(
        "--libraries",
        default=",".join(RUNS),
        help="run names (dspy-miprov2, ...) or library names (dspy = all its optimizers)",
    )
    ap.add_argument("--task-calls", type=int, default=600, help="optimize-phase task-call budget")
    ap.add_argument("--test-limit", type=int, default=100, help="first N rows of test.jsonl")
    ap.add_argument("--timeout", type=float, default=1500.0, help="seconds per run, all phases")
    ap.add_argument(
        "--opt-timeout", type=float, default=0.0, help="seconds for the optimisation (0: 70%%)"
    )
    ap.add_argument("--cap", type=int, default=0, help="proxy hard cap on task calls; 0: none")
    ap.add_argument("--task-max-tokens", type=int, default=128)
    ap.add_argument("--meta-max-tokens", type=int, default=512)
    ap.add_argument("--out", default="peers.json", help="file name in benchmarks/results")
    ap.add_argument("--work-dir", default="/tmp/pa-peers", help="configs, logs, proxy log")
    ap.add_argument("--resume", action="store_true", help="skip runs already in --out")
    ap.add_argument("--table-only", action="store_true", help="print the table of --out")
    return ap.parse_args()


def selected_runs(spec: str) -> list[str]:
    names: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        matches = [part] if part in RUNS else [r for r in RUNS if RUNS[r][0] == part]
        if not matches:
            raise SystemExit(f"unknown library or run {part!r}; known: {', '.join(RUNS)}")
        names += [m for m in matches if m not in names]
    return names


# ----------------------------------------------------------------------------- data


def read_rows(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def task_info(task: str, test_limit: int) -> dict[str, Any]:
    folder = DATA / task
    meta = json.loads((folder / "task.json").read_text())
    test_rows = read_rows(folder / "test.jsonl", test_limit)
    return {
        "seed_prompt": meta["seed_prompt"],
        "train": read_rows(folder / "train.jsonl"),
        "dev": read_rows(folder / "dev.jsonl"),
        "test_rows": test_rows,
        "test": list(load_jsonl(folder / "test.jsonl").head(test_limit)),
        "choices": test_rows[0]["choices"],
    }


# ----------------------------------------------------------------------------- scoring


def score_outputs(outputs: dict[str, str], test: list[Example]) -> dict[str, Any]:
    """choice_accuracy per test example; a missing output scores 0 and is counted."""
    metric = get_metric("choice_accuracy")
    values: list[float] = []
    unparsed = missing = 0
    predicted: Tally[str] = Tally()
    for ex in test:
        if ex.id not in outputs:
            missing += 1
            values.append(0.0)
            continue
        s = metric.score(outputs[ex.id], ex)
        values.append(s.value)
        unparsed += int(not s.parsed)
        predicted[s.prediction if s.parsed else "(none)"] += 1
    ci = bootstrap_ci(values) if values else None
    return {
        "values": values,
        "score": ci.mean if ci else None,
        "ci": [ci.low, ci.high] if ci else None,
        "unparsed": unparsed,
        "missing": missing,
        "predicted": dict(predicted),
    }


def summarize_scores(adapter_out: dict[str, Any], test: list[Example]) -> dict[str, Any]:
    seed = score_outputs(adapter_out.get("test_outputs_seed") or {}, test)
    have_best = bool(adapter_out.get("test_outputs_best"))
    best = score_outputs(adapter_out["test_outputs_best"], test) if have_best else None
    row: dict[str, Any] = {"test_seed": _public(seed), "test_best": _public(best)}
    if best is not None:
        d = paired_difference(seed["values"], best["values"])
        row["difference"] = {"mean": d.mean_diff, "ci": [d.low, d.high], "p_value": d.p_value}
    else:
        row["difference"] = None
    targets = Tally(ex.target for ex in test)
    row["majority_rate"] = max(targets.values()) / len(test) if test else None
    return row


def _public(s: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if s is None else {k: v for k, v in s.items() if k != "values"}


# ----------------------------------------------------------------------------- one run


def proxy_counts(counts: Counts, label: str) -> dict[str, Any]:
    snap = counts.snapshot()
    keys = {"task": f"{label}~task/optimize", "meta": f"{label}~meta/optimize"}
    keys["test"] = f"{label}/test"
    fields = ("requests", "completed", "errors", "refused_over_cap", "max_tokens_rewrites")
    fields += ("prompt_tokens", "completion_tokens", "upstream_seconds")
    return {role: {f: snap.get(k, {}).get(f, 0) for f in fields} for role, k in keys.items()}


def run_one(
    run: str,
    task: str,
    info: dict[str, Any],
    args: argparse.Namespace,
    proxy: ProxyServer,
    counts: Counts,
) -> dict[str, Any]:
    lib_name, optimizer, script = RUNS[run]
    lib = LIBS[lib_name]
    label = f"{run}-{task}"
    work = Path(args.work_dir)
    out_path = work / f"{label}.out.json"
    out_path.unlink(missing_ok=True)
    opt_timeout = args.opt_timeout or 0.7 * args.timeout
    cfg = {
        "library": lib_name,
        "optimizer": optimizer,
        "task": task,
        "seed_prompt": info["seed_prompt"],
        "choices": info["choices"],
        "train": info["train"],
        "dev": info["dev"],
        "test": [{k: r[k] for k in ("id", "input", "choices")} for r in info["test_rows"]],
        "urls": {
            "task": proxy.base_url(f"{label}~task", "optimize"),
            "meta": proxy.base_url(f"{label}~meta", "optimize"),
            "test": proxy.base_url(label, "test"),
        },
        "budget": args.task_calls,
        "task_max_tokens": args.task_max_tokens,
        "meta_max_tokens": args.meta_max_tokens,
        "opt_timeout": opt_timeout,
        "out": str(out_path),
    }
    cfg_path = work / f"{label}.cfg.json"
    cfg_path.write_text(json.dumps(cfg))
    began = time.time()
    status = run_adapter(lib.python, HERE / script, cfg_path, work / f"{label}.log", args.timeout)
    wall = time.time() - began
    adapter_out = json.loads(out_path.read_text()) if out_path.exists() else {}
    calls = proxy_counts(counts, label)
    row: dict[str, Any] = {
        "run": run,
        "library": lib_name,
        "version": installed_version(lib),
        "optimizer": optimizer,
        "task": task,
        "status": final_status(status, adapter_out),
        "stage_reached": adapter_out.get("stage"),
        "error": adapter_out.get("error") or (None if status == "exited" else status),
        "wall_seconds": round(wall, 1),
        "timings": adapter_out.get("timings"),
        "budget_task_calls": args.task_calls,
        "settings": {
            k: getattr(args, k)
            for k in ("test_limit", "timeout", "opt_timeout", "cap", "task_max_tokens")
        }
        | {"meta_max_tokens": args.meta_max_tokens, "started": time.strftime("%F %T")},
        "calls": calls,
        "over_budget": calls["task"]["requests"] > args.task_calls,
        "seed_prompt": info["seed_prompt"],
        "best_prompt": adapter_out.get("best_prompt"),
        "notes": adapter_out.get("notes"),
        "test_errors_seed": _count(adapter_out.get("test_errors_seed")),
        "test_errors_best": _count(adapter_out.get("test_errors_best")),
        "test_error_example": _first(adapter_out.get("test_errors_best"))
        or _first(adapter_out.get("test_errors_seed")),
        "adapter_output": str(out_path),
    }
    row.update(summarize_scores(adapter_out, info["test"]))
    return row


def run_adapter(python: Path, script: Path, cfg: Path, log: Path, timeout: float) -> str:
    """'exited', 'timeout' or 'exit code N'; output goes to the log file."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OPENAI_API_KEY="none")
    with log.open("wb") as f:
        proc = subprocess.Popen(
            [str(python), str(script), str(cfg)],
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=str(HERE),
            env=env,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            return "timeout"
    return "exited" if code == 0 else f"exit code {code}"


def final_status(process_status: str, out: dict[str, Any]) -> str:
    if process_status == "timeout":
        return "timeout"
    status = out.get("status")
    if not out or status == "running":
        return f"crashed ({process_status})"
    if status == "ok" and _same_prompt(out.get("seed_prompt"), out.get("best_prompt")):
        return "returned seed"
    return str(status)


def _same_prompt(seed: str | None, best: str | None) -> bool:
    if not seed or not best:
        return False
    if "] demo " in best:
        return False  # DSPy added demonstrations
    lines = [ln for ln in best.splitlines() if not ln.endswith("] instructions:")]
    return " ".join(" ".join(lines).split()) == " ".join(seed.split())


def _count(d: dict[str, Any] | None) -> int:
    return len(d or {})


def _first(d: dict[str, Any] | None) -> str | None:
    return next(iter(d.values())) if d else None


# ----------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}"


def _ci(block: dict[str, Any] | None) -> str:
    if not block or block.get("score") is None:
        return "-"
    low, high = block["ci"]
    return f"{_pct(block['score'])} [{_pct(low)}, {_pct(high)}]"


def _distribution(block: dict[str, Any] | None) -> str:
    if not block:
        return "-"
    return ", ".join(f"{k} {v}" for k, v in sorted(block["predicted"].items()))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| task | library | optimizer | status | test seed [95% CI] | test best [95% CI] "
        "| best - seed [95% CI] | majority rate | predicted (best) | unparsed seed / best "
        "| task calls / budget | meta calls | tokens (prompt + completion) | test calls "
        "| wall min |"
    )
    lines = [head, "|" + " --- |" * 15]
    for r in rows:
        d = r.get("difference")
        diff = "-" if not d else f"{100 * d['mean']:+.0f} [{100 * d['ci'][0]:+.0f}, "
        diff += "" if not d else f"{100 * d['ci'][1]:+.0f}]"
        c = r["calls"]
        tokens = sum(c[k]["prompt_tokens"] + c[k]["completion_tokens"] for k in ("task", "meta"))
        seed_u = (r.get("test_seed") or {}).get("unparsed", "-")
        best_u = (r.get("test_best") or {}).get("unparsed", "-")
        cells = [
            r["task"],
            f"{r['library']} {r['version']}",
            r["optimizer"],
            r["status"],
            _ci(r.get("test_seed")),
            _ci(r.get("test_best")),
            diff,
            _pct(r.get("majority_rate")),
            _distribution(r.get("test_best")),
            f"{seed_u} / {best_u}",
            f"{c['task']['requests']} / {r['budget_task_calls']}",
            str(c["meta"]["requests"]),
            f"{tokens:,}",
            str(c["test"]["requests"]),
            f"{r['wall_seconds'] / 60:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    path.write_text(json.dumps({**meta, "rows": rows}, indent=1, ensure_ascii=False))


def main() -> int:
    args = parse_args()
    out = RESULTS / args.out
    if args.table_only:
        print(markdown_table(json.loads(out.read_text())["rows"]))
        return 0
    runs = selected_runs(args.libraries)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    for lib in sorted({RUNS[r][0] for r in runs}):
        print(f"venv {lib}: {ensure_venv(LIBS[lib], work / f'install-{lib}.log')}", flush=True)
    rows: list[dict[str, Any]] = []
    earlier: list[dict[str, Any]] = []
    if args.resume and out.exists():
        before = json.loads(out.read_text())
        rows = before.pop("rows")
        earlier = [*before.pop("earlier_invocations", []), before]
    done = {(r["run"], r["task"]) for r in rows}
    meta = {
        "machine": machine(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("resume", "table_only")},
        "versions": {n: installed_version(LIBS[n]) for n in sorted({RUNS[r][0] for r in runs})},
        "model": str(default_model_path().name),
        "earlier_invocations": earlier,
    }
    with ExitStack() as stack:
        base = stack.enter_context(llama_server(default_model_path()))
        counts = Counts(work / "proxy_counts.json", work / "proxy_log.jsonl")
        cap = args.cap
        upstream = base.removesuffix("/v1")
        proxy = start_proxy(upstream, counts, lambda lb: cap if "~task" in lb else 0)
        stack.callback(proxy.shutdown)
        for task in tasks:
            info = task_info(task, args.test_limit)
            for run in runs:
                if (run, task) in done:
                    continue
                print(f"[{time.strftime('%H:%M:%S')}] {run} on {task} ...", flush=True)
                row = run_one(run, task, info, args, proxy, counts)
                rows.append(row)
                write_results(out, rows, meta)
                print(f"    {row['status']}: {markdown_table([row]).splitlines()[-1]}", flush=True)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
