"""Which BIG-bench multiple-choice tasks give the embedded model headroom: can some
hand-made prompt make SmolLM2-135M beat always answering the majority class?

    # 1. the tasks (benchmarks/bigbench_convert.py), then the scan, likelihood first:
    nice -n 10 .venv/bin/python benchmarks/headroom.py run --scoring likelihood
    nice -n 10 .venv/bin/python benchmarks/headroom.py run --scoring generate \
        [--passed-under likelihood] [--sample 40 --sample-seed 0]
    # 2. the tasks that pass, confirmed on examples the scan did not see (dev split):
    nice -n 10 .venv/bin/python benchmarks/headroom.py confirm --scoring likelihood
    # 3. the tables (benchmarks/results/headroom.json and headroom.md):
    .venv/bin/python benchmarks/headroom.py summarize

For each converted task (split folders in --splits, default
~/.cache/promptascent/bigbench-splits), three prompts:

- `own`: the task's own prompt (its seed_prompt; the input follows after a blank line);
- `format`: `own` plus the answer line, "Answer with exactly one of: A, B. Say nothing
  else." where every example has the same set of choices, else the line pointing at the
  listed options (promptascent.prompts.answer_format, as `output_format: auto` writes it);
- `shots`: `format` plus the first three train examples as demonstrations.

Each is scored on the first 50 test examples by promptascent's Evaluator with the
embedded model (concurrency 2, the response cache in --cache-dir, so reruns are free),
under likelihood scoring (sum of the choice's log-probabilities, no calibration: the
package defaults) or generation (choice_accuracy, max_tokens 16, temperature 0). The
baseline always answers the most common target of those examples, or, where the choices
vary between examples, always the option at the most common position of the gold answer
(majority_baseline); per example 1/0; `paired_difference` (bootstrap 95% CI, sign-flip
p) of prompt minus baseline. A task has headroom under a scoring when some prompt's
difference has CI low > 0. A task that passes at 50 examples is rescored on up to 100
(the same rule decides there).

Before any call, every rendered prompt is measured in tokens; a prompt that does not fit
the model's context (4096 tokens, the embedded default, with the longest choice or 16
generated tokens) on some example is not scored and is counted as not fitting.

Scanning hundreds of tasks with three prompts each, some pass by chance: `summarize`
corrects for that (`corrected`: an exact sign test per prompt, Bonferroni over the
prompts, Benjamini-Hochberg over the tasks), and `confirm` scores each task that
passed, with its best prompt only, on up to 100 examples of its dev split, which the
scan never used (the shots come from train); a task is confirmed when Holm's
correction over the tasks confirmed under that scoring keeps its sign-test p below
0.05.

`run` appends one JSON line per (task, prompt, scoring, n) to --results (default
benchmarks/results/headroom_runs.jsonl) as each finishes, and skips what is there on a
restart. Tasks go breadth first over BIG-bench tasks, cheapest first (task_names), so
an interrupted scan has covered the most tasks. `summarize` turns the lines into
benchmarks/results/headroom.json and the Markdown section benchmarks/results/headroom.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import RESULTS, log, machine

from promptascent.config.task import ModelSpec
from promptascent.data.example import Example
from promptascent.data.loaders import SplitTask, load_split_folder
from promptascent.evaluation.baseline import majority_baseline as engine_baseline
from promptascent.evaluation.cache import EvaluationCache
from promptascent.evaluation.evaluator import Evaluator, TaskParams
from promptascent.evaluation.likelihood import LikelihoodScoring
from promptascent.evaluation.stats import (
    benjamini_hochberg,
    holm,
    paired_difference,
    sign_test_p,
)
from promptascent.llm.budget import Budget
from promptascent.llm.embedded import EmbeddedLLM
from promptascent.llm.hub import ModelHub
from promptascent.llm.spec import ModelsSpec
from promptascent.metrics.registry import get_metric
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.prompts.template import escape_braces

SPLITS = Path.home() / ".cache" / "promptascent" / "bigbench-splits"
CACHE = Path.home() / ".cache" / "promptascent" / "headroom-cache"
RUNS = RESULTS / "headroom_runs.jsonl"
PROMPTS = ("own", "format", "shots")
SCORINGS = ("likelihood", "generate")
SCAN_N, RESCORE_N = 50, 100
MAX_TOKENS = 16
CONFIDENCE = 0.95
# The false discovery rate of the correction for scanning many tasks (summarize).
FDR = 0.05
# The held-out confirmation of the tasks that pass (`confirm`): the split, the level.
CONFIRM_SPLIT, CONFIRM_ALPHA = "dev", 0.05


# --------------------------------------------------------------------------- prompts


def answer_line(examples: list[Example]) -> str | None:
    """The answer line of the `format` prompt: promptascent's own (answer_format_line),
    with the choices compared as sets. A task with one set in two orders
    (entailed_polarity, fantasy_reasoning, strange_stories.boolean, ...) gets the line
    naming them in the first example's order: answer_format_line compares ordered tuples
    and would point at listed options, which the converter lists only where the sets
    differ."""
    return answer_format_line(examples[:1] if one_choice_set(examples) else examples)


def prompts_for(task: SplitTask) -> dict[str, Prompt]:
    """The three hand-made prompts of the scan (see the module docstring)."""
    own = Prompt(escape_braces(task.seed_prompt))
    with_format = Prompt(own.instruction, output_format=answer_line(all_examples(task)))
    demos = tuple(Demo(ex.input, ex.target or "") for ex in task.train.examples[:3])
    return {"own": own, "format": with_format, "shots": with_format.with_demos(demos)}


# --------------------------------------------------------------------------- scoring


@dataclass
class Scorer:
    """The embedded model behind promptascent's Evaluator, one per scoring."""

    backend: EmbeddedLLM
    evaluator: Evaluator
    scoring: str

    @classmethod
    def build(cls, scoring: str, cache_dir: Path, concurrency: int) -> Scorer:
        hub = ModelHub(ModelsSpec(task=ModelSpec.parse("embedded")), cache_dir=cache_dir).open()
        backend = hub.backend("task")
        assert isinstance(backend, EmbeddedLLM)
        client = hub.client("task", hub.guard(Budget()))
        evaluator = Evaluator(
            client,
            get_metric("choice_accuracy"),
            params=TaskParams(temperature=0.0, max_tokens=MAX_TOKENS),
            concurrency=concurrency,
            cache=EvaluationCache(cache_dir / "evaluations.sqlite"),
            likelihood=LikelihoodScoring() if scoring == "likelihood" else None,
        )
        return cls(backend, evaluator, scoring)

    def overflowing(self, prompt: Prompt, examples: list[Example]) -> int:
        """How many examples' prompts do not fit the context (with the longest choice
        under likelihood, with MAX_TOKENS generated tokens otherwise)."""
        n_ctx = self.backend.info.context_length
        count = 0
        for ex in examples:
            used = self.backend.count_tokens(self.backend.render(prompt.render(ex.fields)))
            if self.scoring == "likelihood":
                used += max(self.backend.count_tokens(c) for c in ex.choices or ("",))
            else:
                used += MAX_TOKENS
            count += used > n_ctx
        return count

    def score(
        self, task: str, name: str, prompt: Prompt, examples: list[Example], fixed_labels: bool
    ) -> dict[str, Any]:
        """One line of the results file: the prompt on the examples against the
        majority baseline (majority_baseline)."""
        line: dict[str, Any] = {
            "task": task,
            "prompt": name,
            "scoring": self.scoring,
            "n": len(examples),
            "prompt_id": prompt.id,
        }
        majority, base = majority_baseline(examples, fixed_labels)
        line.update(
            majority=majority,
            majority_rate=sum(base) / len(base),
            chance_rate=sum(1 / len(ex.choices or ("",)) for ex in examples) / len(examples),
            fixed_labels=fixed_labels,
        )
        too_long = self.overflowing(prompt, examples)
        if too_long:
            return {**line, "fits": False, "overflowing": too_long}
        began = time.perf_counter()
        res = self.evaluator.evaluate(prompt, examples)
        seconds = time.perf_counter() - began
        errors = [r for r in res.results if r.score is None]
        pairs = [
            (b, r.score) for b, r in zip(base, res.results, strict=True) if r.score is not None
        ]
        cmp = paired_difference([b for b, _ in pairs], [s for _, s in pairs], confidence=CONFIDENCE)
        losses = [r.loss for r in res.results if r.loss is not None]
        return {
            **line,
            "fits": True,
            "accuracy": sum(s for _, s in pairs) / len(pairs) if pairs else None,
            "errors": len(errors),
            "error_examples": [f"{r.example_id}: {r.error}" for r in errors[:3]],
            "unparsed": sum(1 for r in res.results if r.score is not None and not r.parsed),
            "mean_loss": sum(losses) / len(losses) if losses else None,
            "diff": {
                "mean": cmp.mean_diff,
                "ci_low": cmp.low,
                "ci_high": cmp.high,
                "p_value": cmp.p_value,
                "wins": cmp.wins,
                "losses": cmp.losses,
                "ties": cmp.ties,
                "n": cmp.n,
            },
            "headroom": bool(pairs) and cmp.low > 0,
            "predictions": dict(Counter(r.prediction or "" for r in res.results).most_common()),
            "scores": [r.score for r in res.results],
            "outputs": [r.output for r in res.results] if self.scoring == "generate" else None,
            "cached": sum(1 for r in res.results if r.cached),
            "seconds": round(seconds, 2),
        }


def majority_baseline(examples: list[Example], fixed_labels: bool) -> tuple[str, list[float]]:
    """The constant predictor a model that learned only the answer format could be, and
    its per-example scores (1.0 where it is right): the engine's baseline
    (evaluation/baseline.py), by target where the task has one label set, by position
    where its choices vary between examples."""
    targets = [ex.target for ex in examples]
    choices = None if fixed_labels else [ex.choices for ex in examples]
    baseline = engine_baseline(targets, choices)
    if baseline is None:
        raise ValueError("the headroom scan needs a target on every example")
    return baseline.answer, list(baseline.scores)


def all_examples(task: SplitTask) -> list[Example]:
    return [ex for d in (task.train, task.dev, task.test) for ex in d or ()]


def one_choice_set(examples: Iterable[Example]) -> bool:
    """Whether every example has the same set of choices (in any order)."""
    return len({frozenset(ex.choices or ()) for ex in examples}) == 1


def has_fixed_labels(task: SplitTask) -> bool:
    """Whether every example of the task has the same set of choices."""
    return one_choice_set(all_examples(task))


# --------------------------------------------------------------------------- the scan


def task_names(splits: Path) -> list[str]:
    """The converted multiple-choice tasks in scan order: breadth first over BIG-bench
    tasks (the cheapest subtask of every task, then the second cheapest of those with
    subtasks, and so on), cheapest first within a round. So an interrupted scan has
    covered the most BIG-bench tasks, not 110 language variants of multiemo. The cost is
    estimated in characters: the own prompt and input of the first SCAN_N test
    examples and their choices, three times, plus three shots."""
    index = json.loads((splits / "index.json").read_text())
    cost = {c["name"]: _cost(splits / c["name"]) for c in index["converted"]}
    by_parent: dict[str, list[str]] = {}
    for name in sorted(cost, key=lambda n: (cost[n], n)):
        by_parent.setdefault(name.split(".")[0], []).append(name)
    rank = {n: i for names in by_parent.values() for i, n in enumerate(names)}
    return sorted(cost, key=lambda n: (rank[n], cost[n], n))


def first_round_sample(names: list[str], k: int, seed: int) -> set[str]:
    """A seeded sample of k tasks of the scan's first round (the first subtask of every
    BIG-bench task in scan order): the same whatever has been scored so far."""
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(name.split(".")[0], name)
    pool = sorted(first.values())
    return set(random.Random(seed).sample(pool, min(k, len(pool))))


def _cost(folder: Path) -> int:
    seed = len(json.loads((folder / "task.json").read_text())["seed_prompt"])
    test = _head_rows(folder / "test.jsonl", SCAN_N)
    shots = sum(len(r["input"]) + seed for r in _head_rows(folder / "train.jsonl", 3))
    per_example = [seed + len(r["input"]) + sum(len(c) for c in r["choices"]) for r in test]
    return 3 * sum(per_example) + shots


def _head_rows(path: Path, n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if len(rows) == n:
                break
            rows.append(json.loads(line))
    return rows


def load_done(results: Path) -> dict[tuple[str, str, str, int], dict[str, Any]]:
    done: dict[tuple[str, str, str, int], dict[str, Any]] = {}
    if results.is_file():
        for line in _lines(results):
            if "task" in line and line.get("split", "test") == "test":
                done[(line["task"], line["prompt"], line["scoring"], line["n"])] = line
    return done


def append(results: Path, line: dict[str, Any]) -> None:
    """Appends the line in one write to a file opened for appending, so that two scans
    (one per scoring) may share the file."""
    results.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8")
    fd = os.open(results, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def scan_task(
    scorer: Scorer, folder: Path, results: Path, done: dict[tuple[str, str, str, int], Any]
) -> None:
    """The three prompts on the first SCAN_N test examples; on up to RESCORE_N when
    one of them has headroom there."""
    task = load_split_folder(folder)
    test = list(task.test or ())
    prompts = prompts_for(task)
    fixed = has_fixed_labels(task)
    sizes = [min(SCAN_N, len(test))]
    if len(test) > SCAN_N:
        sizes.append(min(RESCORE_N, len(test)))
    for stage, n in enumerate(sizes):
        if stage and not any(
            done.get((task.name, p, scorer.scoring, sizes[0]), {}).get("headroom") for p in PROMPTS
        ):
            return
        for name in PROMPTS:
            key = (task.name, name, scorer.scoring, n)
            if key in done:
                continue
            line = scorer.score(task.name, name, prompts[name], test[:n], fixed)
            append(results, line)
            done[key] = line
            log(_describe(line))


def _describe(line: dict[str, Any]) -> str:
    head = f"{line['task']} [{line['scoring']} {line['prompt']} n={line['n']}]"
    if not line["fits"]:
        return f"{head} does not fit ({line['overflowing']} examples too long)"
    d = line["diff"]
    return (
        f"{head} acc {line['accuracy']:.3f} vs majority {line['majority_rate']:.3f}: "
        f"{d['mean']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p={d['p_value']:.3f}"
        f"{' HEADROOM' if line['headroom'] else ''} ({line['seconds']:.0f}s, "
        f"{line['cached']} cached)"
    )


def passed(done: dict[tuple[str, str, str, int], Any], scoring: str) -> set[str]:
    """Tasks with headroom under `scoring` by the final rule (the largest n scored)."""
    return {t for t, verdict in verdicts(done.values(), scoring).items() if verdict["headroom"]}


def run(args: argparse.Namespace) -> int:
    splits: Path = args.splits.expanduser()
    names = task_names(splits)
    if args.tasks:
        wanted = args.tasks.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            raise SystemExit(f"--tasks: not converted: {', '.join(sorted(unknown))}")
        names = [n for n in names if n in wanted]
    done = load_done(args.results)
    if args.passed_under or args.sample:
        keep = passed(done, args.passed_under) if args.passed_under else set()
        sample = first_round_sample(names, args.sample, args.sample_seed)
        names = [n for n in names if n in keep or n in sample]
        log(
            f"{len(keep)} tasks with headroom under {args.passed_under}; sample of "
            f"{len(sample)} (seed {args.sample_seed}): {', '.join(sorted(sample))}"
        )
    append(
        args.results,
        {"session": machine(), "scoring": args.scoring, "argv": sys.argv[1:], "tasks": len(names)},
    )
    scorer = Scorer.build(args.scoring, args.cache_dir.expanduser(), args.concurrency)
    began = time.time()
    for i, name in enumerate(names, 1):
        scan_task(scorer, splits / name, args.results, done)
        log(f"-- {i}/{len(names)} tasks, {time.time() - began:.0f}s")
    return 0


def best_prompt(verdict: dict[str, Any]) -> str | None:
    """The prompt with the largest difference to the baseline at the task's final n
    (the first of PROMPTS at a tie); None when none fits."""
    fitting = [p for p in PROMPTS if p in verdict["prompts"] and verdict["prompts"][p]["fits"]]
    if not fitting:
        return None
    return max(fitting, key=lambda p: verdict["prompts"][p]["diff"]["mean"])


def confirm(args: argparse.Namespace) -> int:
    """Each task with headroom under --scoring, its best prompt on up to RESCORE_N
    examples of its dev split (held out from the scan); one line each, split "dev"."""
    splits: Path = args.splits.expanduser()
    lines = list(_lines(args.results)) if args.results.is_file() else []
    have = {
        (line["task"], line["scoring"])
        for line in lines
        if "task" in line and line.get("split") == CONFIRM_SPLIT
    }
    todo = [
        (task, best_prompt(v))
        for task, v in sorted(verdicts(lines, args.scoring).items())
        if v["headroom"] and (task, args.scoring) not in have
    ]
    log(f"{len(todo)} tasks to confirm under {args.scoring}: {', '.join(t for t, _ in todo)}")
    if not todo:
        return 0
    append(
        args.results,
        {"session": machine(), "scoring": args.scoring, "argv": sys.argv[1:], "tasks": len(todo)},
    )
    scorer = Scorer.build(args.scoring, args.cache_dir.expanduser(), args.concurrency)
    for task_name, prompt_name in todo:
        assert prompt_name is not None  # a task with headroom has a prompt that fits
        task = load_split_folder(splits / task_name)
        held_out = list(task.dev or ())[:RESCORE_N]
        if not held_out:
            log(f"{task_name}: no dev split to confirm on")
            continue
        prompt = prompts_for(task)[prompt_name]
        line = scorer.score(task_name, prompt_name, prompt, held_out, has_fixed_labels(task))
        line["split"] = CONFIRM_SPLIT
        append(args.results, line)
        log(f"confirm: {_describe(line)}")
    return 0


def confirmations(lines: list[dict[str, Any]], scoring: str) -> dict[str, dict[str, Any]]:
    """Per task confirmed on held-out examples under `scoring`: its line's figures,
    the exact one-sided sign-test p and whether Holm's correction over these tasks
    keeps it below CONFIRM_ALPHA."""
    found = {
        line["task"]: line
        for line in lines
        if "task" in line and line.get("split") == CONFIRM_SPLIT and line["scoring"] == scoring
    }
    ps = {t: sign_test_p(x["diff"]["wins"], x["diff"]["losses"]) for t, x in found.items()}
    held = dict(zip(ps, holm(list(ps.values()), CONFIRM_ALPHA), strict=True))
    return {
        t: {
            "prompt": x["prompt"],
            "n": x["n"],
            "accuracy": x["accuracy"],
            "majority_rate": x["majority_rate"],
            "diff": round(x["diff"]["mean"], 4),
            "ci": [round(x["diff"]["ci_low"], 4), round(x["diff"]["ci_high"], 4)],
            "wins": x["diff"]["wins"],
            "losses": x["diff"]["losses"],
            "sign_p": ps[t],
            "confirmed": held[t],
        }
        for t, x in sorted(found.items())
    }


# --------------------------------------------------------------------------- summary


def verdicts(lines: Iterable[dict[str, Any]], scoring: str) -> dict[str, dict[str, Any]]:
    """Per task, under `scoring`: the lines of the largest n scored, and whether some
    prompt there has CI low > 0 against the majority baseline."""
    by_task: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    for line in lines:
        if line.get("scoring") != scoring or "task" not in line:
            continue
        if line.get("split", "test") == "test":
            by_task.setdefault(line["task"], {}).setdefault(line["n"], {})[line["prompt"]] = line
    out = {}
    for task, by_n in by_task.items():
        n = max(by_n)
        prompts = by_n[n]
        out[task] = {
            "n": n,
            "scan_n": min(by_n),
            "complete": all(p in prompts for p in PROMPTS),
            "prompts": prompts,
            "headroom": any(line.get("headroom") for line in prompts.values()),
            "fits": any(line["fits"] for line in prompts.values()),
        }
    return out


def corrected(verdicts: dict[str, dict[str, Any]]) -> dict[str, tuple[float, bool]]:
    """The headroom verdicts corrected for the scan's many tests: per task with a
    prompt that fits, a p-value (the exact one-sided sign test of each prompt against
    the baseline on the task's largest n, the smallest times the prompts scored:
    Bonferroni) and whether Benjamini-Hochberg at FDR rejects it over all such tasks."""
    task_p: dict[str, float] = {}
    for task, v in verdicts.items():
        ps = [
            sign_test_p(line["diff"]["wins"], line["diff"]["losses"])
            for line in v["prompts"].values()
            if line["fits"]
        ]
        if ps:
            task_p[task] = min(1.0, len(ps) * min(ps))
    names = sorted(task_p)
    passed = benjamini_hochberg([task_p[t] for t in names], FDR)
    return {t: (task_p[t], ok) for t, ok in zip(names, passed, strict=True)}


def summarize(args: argparse.Namespace) -> int:
    lines = list(_lines(args.results))
    sessions = [line for line in lines if "session" in line]
    index = json.loads((args.splits.expanduser() / "index.json").read_text())
    per_scoring = {s: verdicts(lines, s) for s in SCORINGS}
    fdr = {s: corrected(v) for s, v in per_scoring.items()}
    confirmed = {s: confirmations(lines, s) for s in SCORINGS}
    tasks: dict[str, Any] = {}
    for name in sorted({t for v in per_scoring.values() for t in v}):
        entry: dict[str, Any] = {}
        for scoring, v in per_scoring.items():
            if name not in v:
                continue
            verdict = v[name]
            entry[scoring] = {
                "n": verdict["n"],
                "scan_n": verdict["scan_n"],
                "majority": next(iter(verdict["prompts"].values()))["majority"],
                "majority_rate": next(iter(verdict["prompts"].values()))["majority_rate"],
                "headroom": verdict["headroom"],
                "task_p": fdr[scoring].get(name, (1.0, False))[0],
                "headroom_fdr": fdr[scoring].get(name, (1.0, False))[1],
                "complete": verdict["complete"],
                "prompts": {
                    p: _prompt_summary(line) for p, line in sorted(verdict["prompts"].items())
                },
            }
        tasks[name] = entry
    counts = {
        s: {
            "scanned": len(v),
            "complete": sum(1 for x in v.values() if x["complete"]),
            "fit": sum(1 for x in v.values() if x["fits"]),
            "headroom": sorted(t for t, x in v.items() if x["headroom"]),
            "headroom_fdr": sorted(t for t, (_, ok) in fdr[s].items() if ok),
            "confirmed": sorted(t for t, c in confirmed[s].items() if c["confirmed"]),
        }
        for s, v in per_scoring.items()
    }
    data = {
        "what": "BIG-bench multiple-choice tasks where a hand-made prompt beats the "
        "majority class with SmolLM2-135M (benchmarks/headroom.py)",
        "package": index["package"],
        "converted": len(index["converted"]),
        "skipped_generation": sum(1 for x in index["skipped"] if _is_generation(x)),
        "not_converted": [
            {"name": x["name"], "reason": x["reason"]}
            for x in index["skipped"]
            if not _is_generation(x)
        ],
        "rule": f"headroom: some prompt's paired difference to the majority baseline has "
        f"{CONFIDENCE:.0%} bootstrap CI low > 0, on the first {SCAN_N} test examples, "
        f"confirmed on up to {RESCORE_N}; headroom_fdr: the same corrected for the scan "
        f"(exact one-sided sign test per prompt, Bonferroni over the prompts, "
        f"Benjamini-Hochberg at FDR {FDR:.0%} over the tasks scanned)",
        "sessions": sessions,
        "counts": counts,
        "confirmations": confirmed,
        "tasks": tasks,
    }
    out = RESULTS / "headroom.json"
    out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    md = RESULTS / "headroom.md"
    md.write_text(markdown(data, index))
    print(f"wrote {out} and {md}")
    print(json.dumps(counts, indent=1))
    return 0


# The six tasks of the earlier probe (../shared/design/FINDINGS.md, December 2026).
PROBE = (
    "hyperbaton",
    "metaphor_boolean",
    "hinglish_toxicity",
    "emojis_emotion_prediction",
    "anachronisms",
    "dark_humor_detection",
)

COMMANDS = """\
.venv/bin/python benchmarks/bigbench_convert.py            # ~/.cache/promptascent/bigbench-splits
.venv/bin/python benchmarks/bigbench_convert.py --out /tmp/check \\
    --check-shared ../shared/datasets/bigbench             # byte-identical to the shared tasks
nice -n 10 .venv/bin/python benchmarks/headroom.py run --scoring likelihood
nice -n 10 .venv/bin/python benchmarks/headroom.py run --scoring generate {generate_args}
nice -n 10 .venv/bin/python benchmarks/headroom.py confirm --scoring likelihood   # dev split
.venv/bin/python benchmarks/headroom.py summarize"""


def _is_generation(skipped: dict[str, Any]) -> bool:
    return str(skipped["reason"]).startswith("generation")


def _not_converted(data: dict[str, Any]) -> str:
    """The tasks the converter refused for another reason than being generation tasks
    (e.g. an example longer than the loader's data.max_example_chars), named, for the
    sentence on the package; headroom.json has each reason."""
    refused = data.get("not_converted") or []
    if not refused:
        return ""
    names = ", ".join(x["name"] for x in refused)
    return f"; {len(refused)} more not converted (the reason is in headroom.json): {names}"


def markdown(data: dict[str, Any], index: dict[str, Any]) -> str:
    """The section for BENCHMARKS.md, from headroom.json's data."""
    sessions = data["sessions"]
    first, last = sessions[0]["session"], sessions[-1]["session"]
    counts = data["counts"]
    tasks = data["tasks"]
    subtasks = sum(1 for c in index["converted"] if "." in c["name"])
    lines = [
        "## Headroom: BIG-bench tasks where a hand-made prompt beats the majority class",
        "",
        f"Measured {first['date']} to {last['date']} ({first['cpu_model']}, "
        f"{first['cpus']} cores shared with other work, llama-cpp-python "
        f"{first['llama_cpp_python']}), embedded SmolLM2-135M-Instruct, "
        "`benchmarks/headroom.py`; raw lines in `benchmarks/results/headroom_runs.jsonl`, "
        "per task in `benchmarks/results/headroom.json`.",
        "",
        f"The {data['package']} package has {data['converted']} multiple-choice tasks "
        f"({data['converted'] - subtasks} tasks and {subtasks} subtasks of tasks whose "
        f"task.json holds only subtasks, each subtask converted as `<task>.<subtask>`; "
        f"{data['skipped_generation']} generation tasks and subtasks skipped"
        f"{_not_converted(data)}). Per task, "
        "three prompts: `own` (the task's own prompt), `format` (plus the line naming the "
        "answers), `shots` (plus three train examples as demonstrations); scored on the "
        f"first {SCAN_N} test examples, by likelihood (sum, no calibration) and by "
        f"generation (choice_accuracy, max_tokens {MAX_TOKENS}). Baseline: always the "
        "most common target of those examples; where the choices vary between examples "
        "(an `Options:` list in the input), always the option at the most common position "
        "of the gold answer. A task has headroom when some prompt's "
        f"paired difference to the baseline has 95% CI low > 0; the tasks that pass at "
        f"{SCAN_N} are rescored on up to {RESCORE_N} examples, where the same rule decides.",
        "",
        "| | likelihood | generation |",
        "|---|---|---|",
    ]
    conv = data["converted"]
    for label, key in (
        ("tasks scored (all three prompts)", "complete"),
        ("tasks where a prompt fits the context", "fit"),
    ):
        by = [f"{counts[s][key]} of {conv}" for s in SCORINGS]
        lines.append(f"| {label} | {by[0]} | {by[1]} |")
    lines.append(
        f"| **tasks with headroom** | **{len(counts['likelihood']['headroom'])}** | "
        f"**{len(counts['generate']['headroom'])}** |"
    )
    lines.append(
        f"| **tasks with headroom after correcting for the scan** | "
        f"**{len(counts['likelihood']['headroom_fdr'])}** | "
        f"**{len(counts['generate']['headroom_fdr'])}** |"
    )
    lines.append(
        f"| tasks with headroom confirmed on held-out examples | "
        f"{len(counts['likelihood']['confirmed'])} of "
        f"{len(data['confirmations']['likelihood'])} | "
        f"{len(counts['generate']['confirmed'])} of {len(data['confirmations']['generate'])} |"
    )
    lines += [
        "",
        "Tasks with headroom (accuracy of each prompt; the best prompt's "
        "difference to the baseline with its 95% CI and p; then the task's p corrected "
        "for its three prompts, and whether it survives the correction for the scan: "
        "exact one-sided sign test of each prompt against the baseline, the smallest "
        f"times the prompts scored, Benjamini-Hochberg at a false discovery rate of "
        f"{FDR:.0%} over every task scanned under that scoring):",
        "",
        "| task | scoring | n | majority | own | format | shots | best: diff [CI] | p "
        "| task p | survives |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in tasks.items():
        for scoring in SCORINGS:
            e = entry.get(scoring)
            if not e or not e["headroom"]:
                continue
            survives = "yes" if e["headroom_fdr"] else "no"
            lines.append(f"{_row(name, scoring, e)} {e['task_p']:.2g} | {survives} |")
    for scoring in SCORINGS:
        found = data["confirmations"][scoring]
        if not found:
            continue
        lines += [
            "",
            f"Confirmed on held-out examples ({scoring}): each task above, its best "
            f"prompt only, on up to {RESCORE_N} examples of its {CONFIRM_SPLIT} split, "
            "which the scan did not use (the shots are train examples); baseline as "
            "above, on those examples; exact one-sided sign test, Holm's correction over "
            f"these {len(found)} tasks at {CONFIRM_ALPHA:.0%}:",
            "",
            "| task | prompt | n | majority | accuracy | diff [CI] | wins/losses | p | confirmed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, c in found.items():
            lines.append(
                f"| {name} | {c['prompt']} | {c['n']} | {c['majority_rate']:.2f} "
                f"| {c['accuracy']:.2f} | {c['diff']:+.2f} [{c['ci'][0]:+.2f}, "
                f"{c['ci'][1]:+.2f}] | {c['wins']}/{c['losses']} | {c['sign_p']:.2g} "
                f"| {'yes' if c['confirmed'] else 'no'} |"
            )
    lines += [
        "",
        "The six tasks of the earlier probe (FINDINGS.md):",
        "",
        "| task | scoring | n | majority | own | format | shots | best: diff [CI] | p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in PROBE:
        for scoring in SCORINGS:
            e = tasks.get(name, {}).get(scoring)
            lines.append(
                _row(name, scoring, e) if e else f"| {name} | {scoring} | not scored | | | | | | |"
            )
    gen_scanned = counts["generate"]["scanned"]
    lines += [
        "",
        "Reproduce:",
        "",
        "```sh",
        COMMANDS.format(
            generate_args="" if gen_scanned >= conv else "--passed-under likelihood --sample N"
        ),
        "```",
        "",
    ]
    return "\n".join(lines)


def _row(name: str, scoring: str, e: dict[str, Any]) -> str:
    cells = []
    best: tuple[float, str] | None = None
    for p in PROMPTS:
        s = e["prompts"].get(p)
        if s is None:
            cells.append("-")
        elif not s.get("fits", True):
            cells.append("too long")
        else:
            cells.append(f"{s['accuracy']:.2f}")
            if best is None or s["diff"] > best[0]:
                best = (s["diff"], p)
    head = f"| {name} | {scoring} | {e['n']} | {e['majority_rate']:.2f} | {' | '.join(cells)} |"
    if best is None:
        return f"{head} | |"
    s = e["prompts"][best[1]]
    return (
        f"{head} {s['diff']:+.2f} [{s['ci'][0]:+.2f}, {s['ci'][1]:+.2f}] ({best[1]}) "
        f"| {s['p']:.3f} |"
    )


def _lines(results: Path) -> Iterable[dict[str, Any]]:
    """The results file's lines; a last line being written is left out."""
    for raw in results.read_text(encoding="utf-8").splitlines():
        try:
            yield json.loads(raw)
        except json.JSONDecodeError:
            continue


def _prompt_summary(line: dict[str, Any]) -> dict[str, Any]:
    if not line["fits"]:
        return {"fits": False, "overflowing": line["overflowing"]}
    d = line["diff"]
    return {
        "fits": True,
        "accuracy": line["accuracy"],
        "diff": round(d["mean"], 4),
        "ci": [round(d["ci_low"], 4), round(d["ci_high"], 4)],
        "p": round(d["p_value"], 4),
        "headroom": line["headroom"],
        "unparsed": line["unparsed"],
        "errors": line["errors"],
        "mean_loss": line["mean_loss"],
        "predictions": dict(list(line["predictions"].items())[:5]),
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="score the prompts (resumable)")
    r.add_argument("--scoring", choices=SCORINGS, required=True)
    r.add_argument("--tasks", default="", help="comma-separated task names (default all)")
    r.add_argument(
        "--passed-under",
        choices=SCORINGS,
        default=None,
        help="only the tasks with headroom under this scoring (plus --sample)",
    )
    r.add_argument(
        "--sample",
        type=int,
        default=0,
        help="plus a seeded sample of this many tasks of the first round (first_round_sample)",
    )
    r.add_argument("--sample-seed", type=int, default=0)
    r.add_argument("--concurrency", type=int, default=2)
    r.add_argument("--cache-dir", type=Path, default=CACHE)
    c = sub.add_parser(
        "confirm", help="score the tasks that pass on their dev split (held out; resumable)"
    )
    c.add_argument("--scoring", choices=SCORINGS, required=True)
    c.add_argument("--concurrency", type=int, default=2)
    c.add_argument("--cache-dir", type=Path, default=CACHE)
    s = sub.add_parser("summarize", help="write headroom.json and headroom.md")
    for p in (r, c, s):
        p.add_argument("--splits", type=Path, default=SPLITS)
        p.add_argument("--results", type=Path, default=RUNS)
    args = ap.parse_args(argv)
    return {"run": run, "confirm": confirm, "summarize": summarize}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
