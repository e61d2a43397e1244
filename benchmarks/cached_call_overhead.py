"""Engine overhead per cached call.

1. Response-cache hits: N completions are stored in a ResponseCache (SQLite file in a
   temporary folder) through ModelClient.complete with a ScriptedLLM backend; then
   ModelClient.complete is timed on the same N requests (every call a cache hit).
2. Evaluation-cache hits: N examples are evaluated once through an Evaluator with an
   EvaluationCache (and the response cache behind it); then Evaluator.run_one is timed
   on the same (prompt, example) pairs (every call an evaluation-cache hit, scored by
   the metric, accounted as a replay).

Each path is timed with an unlimited budget and with a budget that has limits (the
guard then reads the usage meter for every limited measure), --reps times over all
N calls; the figure is microseconds per call (median, min, max over repetitions).
The cold (populating) pass is reported too: it includes the cache writes.
Then each hit path runs once under cProfile; the top entries by cumulative time are
printed. Target: well under 1 ms per cached call.

    .venv/bin/python benchmarks/cached_call_overhead.py [--n 2000] [--reps 7]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, CpuMonitor, log, machine, spread, table, wait_quiet, write_result

from promptascent.data.example import Example
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.evaluator import Evaluator, TaskParams
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.cache import ResponseCache
from promptascent.llm.client import ModelClient
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest, Message
from promptascent.llm.usage import UsageMeter
from promptascent.metrics.registry import get_metric
from promptascent.prompts.prompt import Prompt

PROMPT = Prompt("If you follow these instructions, do you return to the starting point?")
# Limits far above what the benchmark spends: only the cost of checking them counts.
LIMITED = Budget(calls=10**9, tokens=10**12, task_calls=10**9, task_tokens=10**12)


def make_examples(n: int) -> list[Example]:
    return [
        Example(
            id=f"bench-{i}",
            input=f"Take {i % 10 + 1} steps. Turn around. Take {i % 7 + 1} steps. ({i})",
            target="True" if i % 2 else "False",
            choices=("True", "False"),
        )
        for i in range(n)
    ]


def responder(request: CompletionRequest) -> str:
    return "True" if len(request.messages[-1].content) % 2 else "False"


def client(backend: ScriptedLLM, cache: ResponseCache, budget: Budget) -> ModelClient:
    meter = UsageMeter()
    return ModelClient("task", backend, meter=meter, guard=BudgetGuard(budget, meter), cache=cache)


def per_call_us(fn: Any, items: list[Any]) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - t0) / len(items) * 1e6


def profile_top(fn: Any, items: list[Any], top: int = 5) -> list[dict[str, Any]]:
    prof = cProfile.Profile()
    prof.enable()
    for item in items:
        fn(item)
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({func})",
                "ncalls": ncalls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "cum_us_per_call": cumtime / len(items) * 1e6,
            }
        )
    rows.sort(key=lambda r: r["cumtime_s"], reverse=True)
    # Skip the profiler's own frames and this loop.
    rows = [r for r in rows if "lsprof" not in r["function"] and "<lambda>" not in r["function"]]
    return rows[:top]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return Path(filename).name if "/" in filename else filename


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument(
        "--quiet-wait", type=float, default=60.0, help="wait up to this long for a quiet machine"
    )
    args = ap.parse_args()
    n = args.n
    examples = make_examples(n)
    metric = get_metric("choice_accuracy")
    params = TaskParams(temperature=0.0, max_tokens=32, seed=0)
    results: dict[str, Any] = {}
    profiles: dict[str, Any] = {}

    wait_quiet(args.quiet_wait)
    monitor = CpuMonitor().__enter__()
    with tempfile.TemporaryDirectory(prefix="pa-bench-cache-") as tmp:
        folder = Path(tmp)
        backend = ScriptedLLM(responder, model_id="scripted-bench")

        # -- 1. response cache ---------------------------------------------------------
        rcache = ResponseCache(folder / "responses.sqlite")
        requests = [
            CompletionRequest(
                messages=(Message("user", PROMPT.user_text(ex.fields)),),
                temperature=0.0,
                max_tokens=32,
                seed=0,
            )
            for ex in examples
        ]
        c = client(backend, rcache, Budget())
        cold = per_call_us(c.complete, requests)
        log(f"response cache: populated {n} entries, {cold:.0f} us/call (miss + write)")
        assert rcache.stats().entries == n
        results["response_cache_cold_miss_and_put"] = {"us_per_call": cold}
        for label, budget in (("unlimited", Budget()), ("limited", LIMITED)):
            c = client(backend, rcache, budget)
            before = len(backend.requests)
            per_call_us(c.complete, requests[:50])  # warm-up
            reps = [per_call_us(c.complete, requests) for _ in range(args.reps)]
            assert len(backend.requests) == before, "a cache hit reached the backend"
            hits = c.meter.snapshot()["task"].cache_hits
            assert hits == 50 + n * args.reps, hits
            results[f"response_cache_hit_{label}_budget"] = spread(reps)
            log(f"response cache hit, {label} budget: median {spread(reps)['median']:.1f} us")
        c = client(backend, rcache, Budget())
        profiles["ModelClient.complete (response-cache hit, unlimited budget)"] = profile_top(
            c.complete, requests
        )
        c = client(backend, rcache, LIMITED)
        profiles["ModelClient.complete (response-cache hit, limited budget)"] = profile_top(
            c.complete, requests
        )

        # -- 2. evaluation cache -------------------------------------------------------
        ecache = EvaluationCache(folder / "evaluations.sqlite")
        # A fresh response cache behind it, so the populating pass is truly cold.
        rcache2 = ResponseCache(folder / "responses-eval.sqlite")
        c = client(backend, rcache2, Budget())
        ev = Evaluator(c, metric, params=params, concurrency=1, cache=ecache)
        cold = per_call_us(lambda ex: ev.run_one(PROMPT, ex), examples)
        log(f"evaluation cache: populated {n} entries, {cold:.0f} us/call (miss + 2 writes)")
        results["evaluation_cold_miss_and_puts"] = {"us_per_call": cold}
        for label, budget in (("unlimited", Budget()), ("limited", LIMITED)):
            c = client(backend, rcache2, budget)
            ev = Evaluator(c, metric, params=params, concurrency=1, cache=ecache)
            before = len(backend.requests)
            per_call_us(lambda ex, ev=ev: ev.run_one(PROMPT, ex), examples[:50])
            reps = [
                per_call_us(lambda ex, ev=ev: ev.run_one(PROMPT, ex), examples)
                for _ in range(args.reps)
            ]
            assert len(backend.requests) == before, "an evaluation-cache hit reached the backend"
            snap = c.meter.snapshot()["task"]
            assert snap.cache_hits == 50 + n * args.reps and snap.model_calls == 0
            results[f"evaluation_cache_hit_{label}_budget"] = spread(reps)
            log(f"evaluation cache hit, {label} budget: median {spread(reps)['median']:.1f} us")
        c = client(backend, rcache2, LIMITED)
        ev = Evaluator(c, metric, params=params, concurrency=1, cache=ecache)
        profiles["Evaluator.run_one (evaluation-cache hit, limited budget)"] = profile_top(
            lambda ex: ev.run_one(PROMPT, ex), examples
        )
        # Whole-prompt evaluation from the evaluation cache at concurrency 2 (as in a run).
        c = client(backend, rcache2, LIMITED)
        ev2 = Evaluator(c, metric, params=params, concurrency=2, cache=ecache)
        reps = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            res = ev2.evaluate(PROMPT, examples)
            reps.append((time.perf_counter() - t0) / n * 1e6)
            assert all(r.cached for r in res.results)
        results["evaluate_all_hits_concurrency_2_limited_budget"] = spread(reps)
        log(f"Evaluator.evaluate (all hits, concurrency 2): median {spread(reps)['median']:.1f} us")
        rcache.close()
        rcache2.close()

    monitor.__exit__(None, None, None)
    target_us = 1000.0
    hit_keys = [k for k in results if "_hit_" in k or k.startswith("evaluate_all")]
    rows = []
    for key in [*hit_keys, "response_cache_cold_miss_and_put", "evaluation_cold_miss_and_puts"]:
        r = results[key]
        if "median" in r:
            rows.append(
                [
                    key,
                    f"{r['median']:.1f}",
                    f"{r['min']:.1f}",
                    f"{r['max']:.1f}",
                    "yes" if r["median"] < target_us else "NO",
                ]
            )
        else:
            rows.append([key, f"{r['us_per_call']:.1f}", "", "", "(one pass, not a target)"])
    print(f"N={n} calls per repetition, {args.reps} repetitions; microseconds per call")
    print(table(rows, ["path", "median us", "min us", "max us", "< 1 ms"]))
    for name, top in profiles.items():
        print(f"\ncProfile, {name}: top 5 by cumulative time (us per call)")
        print(
            table(
                [[t["function"], str(t["ncalls"]), f"{t['cum_us_per_call']:.1f}"] for t in top],
                ["function", "ncalls", "cum us/call"],
            )
        )
    out = write_result(
        "cached_call_overhead",
        {
            "machine": machine(),
            "n": n,
            "reps": args.reps,
            "target_us": target_us,
            "cpu": monitor.to_dict(),
            "results": results,
            "target_met": all(results[k]["median"] < target_us for k in hit_keys),
            "profiles_top5_cumulative": profiles,
        },
    )
    print(
        f"\nother processes used {monitor.foreign_cores:.2f} cores on average meanwhile"
        + ("  (NOISY)" if monitor.foreign_cores > 0.1 else "")
    )
    print(f"results: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
