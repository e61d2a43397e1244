"""Warm-cache rerun of the same optimization.

Runs `promptascent optimize TASK -q --runs-dir RUNS --cache-dir CACHE` once with a
fresh, empty cache folder (cold), then --warm-runs more times on the same cache folder
(warm). Each run is a separate process, timed from outside with time.perf_counter;
each run's result.json is read back.

Reports: cold and warm wall time (warm: min/median/max), the warm/cold ratio of
medians (target < 5%), the warm runs' model_calls per role from result.json "usage"
(target: zero), and whether the warm runs reproduce the cold run (best candidate,
best prompt, selection scores, test scores and comparison, budget-counted usage).

By default every run gets `--budget task_calls=300` (the task file's 600 makes the
cold run take several minutes on 2 cores); `--budget ""` keeps the file's budget.

    .venv/bin/python benchmarks/warm_rerun.py [--budget task_calls=300] [--warm-runs 5]
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, CpuMonitor, log, machine, spread, table, wait_quiet, write_result

PROMPTASCENT = ROOT / ".venv" / "bin" / "promptascent"
ROLES = ("task", "optimizer", "judge")


def run_once(cmd: list[str], runs_dir: Path) -> dict[str, Any]:
    before = set(runs_dir.iterdir()) if runs_dir.is_dir() else set()
    with CpuMonitor() as mon:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
    new = sorted(set(runs_dir.iterdir()) - before)
    if len(new) != 1:
        raise RuntimeError(f"expected one new run folder, found {new}")
    result = json.loads((new[0] / "result.json").read_text())
    return {"seconds": seconds, "run_dir": str(new[0]), "result": result, "cpu": mon.to_dict()}


def profile_warm(cmd: list[str], runs_dir: Path, tmp: Path, top: int = 20) -> list[str]:
    """One more warm run under cProfile: where the warm run's time goes."""
    import pstats

    out = tmp / "warm.prof"
    python = str(ROOT / ".venv" / "bin" / "python")
    run_once([python, "-m", "cProfile", "-o", str(out), "-m", "promptascent", *cmd[1:]], runs_dir)
    stream = io.StringIO()
    stats = pstats.Stats(str(out), stream=stream)
    # The project's own frames and the model load (the CLI framework's wrappers and
    # runpy would fill the top otherwise).
    stats.sort_stats("cumulative").print_stats(
        r"promptascent/(?!__main__)|llama_cpp/llama\.py", top
    )
    return [line for line in stream.getvalue().splitlines() if line.strip()][-top - 1 :]


def reproducible_part(result: dict[str, Any]) -> dict[str, Any]:
    """What a warm rerun must reproduce exactly."""
    usage = {
        role: {k: v for k, v in u.items() if k in ("calls", "prompt_tokens", "completion_tokens")}
        for role, u in result["usage"].items()
    }
    return {
        "status": result["status"],
        "stopped_by": result["stopped_by"],
        "best_candidate": result["best_candidate"],
        "best_prompt": result["best_prompt"],
        "selection_scores": result["selection_scores"],
        "test": result["test"],
        "candidates": result["candidates"],
        "usage_counted": usage,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="examples/tasks/navigate.yaml")
    ap.add_argument(
        "--budget", default="task_calls=300", help='passed as --budget to every run ("": none)'
    )
    ap.add_argument("--warm-runs", type=int, default=5)
    ap.add_argument(
        "--quiet-wait", type=float, default=60.0, help="wait up to this long for a quiet machine"
    )
    ap.add_argument(
        "--profile", action="store_true", help="one more warm run under cProfile; print its top"
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="pa-bench-warm-"))
    runs_dir, cache_dir = tmp / "runs", tmp / "cache"
    cmd = [
        str(PROMPTASCENT),
        "optimize",
        args.task,
        "-q",
        "--runs-dir",
        str(runs_dir),
        "--cache-dir",
        str(cache_dir),
    ]
    if args.budget:
        cmd += ["--budget", args.budget]
    log("command: " + " ".join(cmd))
    try:
        wait_quiet(args.quiet_wait)
        log("cold run (empty cache) ...")
        cold = run_once(cmd, runs_dir)
        log(f"cold: {cold['seconds']:.1f} s")
        warm = []
        for i in range(args.warm_runs):
            wait_quiet(args.quiet_wait / 4)
            w = run_once(cmd, runs_dir)
            warm.append(w)
            log(f"warm {i + 1}/{args.warm_runs}: {w['seconds']:.2f} s")
        profile = profile_warm(cmd, runs_dir, tmp) if args.profile else None
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    warm_s = spread([w["seconds"] for w in warm])
    ratio = warm_s["median"] / cold["seconds"]
    cold_part = reproducible_part(cold["result"])
    identical = [reproducible_part(w["result"]) == cold_part for w in warm]
    diffs = []
    for w in warm:
        part = reproducible_part(w["result"])
        diffs.append(sorted(k for k in part if part[k] != cold_part[k]))
    warm_model_calls = [
        {role: int(w["result"]["usage"][role]["model_calls"]) for role in ROLES} for w in warm
    ]
    zero_calls = all(sum(m.values()) == 0 for m in warm_model_calls)

    max_foreign = max(r["cpu"]["foreign_cores"] for r in (cold, *warm))
    rows = []
    for label, r in [("cold", cold), *[(f"warm {i + 1}", w) for i, w in enumerate(warm)]]:
        u = r["result"]["usage"]
        t = r["result"]["test"]
        rows.append(
            [
                label,
                f"{r['seconds']:.2f}",
                f"{r['result']['wall_seconds']:.2f}",
                " / ".join(str(int(u[role]["model_calls"])) for role in ROLES),
                " / ".join(str(int(u[role]["cache_hits"])) for role in ROLES),
                r["result"]["best_candidate"],
                f"{t['seed']['mean']:.3f}" if t["seed"] else "-",
                f"{t['best']['mean']:.3f}" if t["best"] else "-",
                f"{r['cpu']['foreign_cores']:.2f}",
            ]
        )
    print(
        table(
            rows,
            [
                "run",
                "process s",
                "runner s",
                "model calls t/o/j",
                "cache hits t/o/j",
                "best",
                "test seed",
                "test best",
                "other procs (cores)",
            ],
        )
    )
    print(
        f"\nwarm/cold wall-time ratio (median warm / cold): {ratio:.2%}  "
        f"(target < 5%: {'met' if ratio < 0.05 else 'NOT met'})"
    )
    print(f"warm model calls: {warm_model_calls}  (target 0: {'met' if zero_calls else 'NOT met'})")
    print(
        f"warm runs reproduce the cold run: {identical}"
        + (f"  differing keys: {diffs}" if not all(identical) else "")
    )
    if max_foreign > 0.1:
        print(
            f"NOISY: other processes used up to {max_foreign:.2f} cores during a timed run; "
            "the times are upper bounds"
        )
    if profile:
        print("\ncProfile of one more warm run (top by cumulative time):")
        print("\n".join(profile))
    out = write_result(
        "warm_rerun",
        {
            "machine": machine(),
            "command": cmd,
            "budget_flag": args.budget,
            "cold_seconds": cold["seconds"],
            "cold_runner_seconds": cold["result"]["wall_seconds"],
            "warm_seconds": warm_s,
            "warm_runner_seconds": spread([w["result"]["wall_seconds"] for w in warm]),
            "warm_cold_ratio": ratio,
            "ratio_target_met": ratio < 0.05,
            "cpu": {"cold": cold["cpu"], "warm": [w["cpu"] for w in warm]},
            "max_foreign_cpu_cores": max_foreign,
            "warm_profile_top": profile,
            "cold_usage": cold["result"]["usage"],
            "warm_usage": [w["result"]["usage"] for w in warm],
            "warm_model_calls": warm_model_calls,
            "zero_model_calls_target_met": zero_calls,
            "identical_to_cold": identical,
            "differing_keys": diffs,
            "best_candidate": {
                "cold": cold["result"]["best_candidate"],
                "warm": [w["result"]["best_candidate"] for w in warm],
            },
            "test": {"cold": cold["result"]["test"], "warm": [w["result"]["test"] for w in warm]},
        },
    )
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
