"""Does likelihood scoring rank prompts as generation does? Rank correlations over the
candidates of real optimization runs on the embedded model.

For each task: the candidates of a few runs (`--optimizers`, seed 0, generation
scoring, `--budget` task calls; every candidate any of them proposed) are each scored
on the first `--examples` dev examples four ways: by generation; by generation with
the answer-format line added ("Answer with exactly one of: ... Say nothing else.", the
fix that made most earlier gains); by likelihood (accuracy); and by likelihood's loss.
Spearman's rho between generation accuracy and likelihood accuracy, between generation
with the format line and likelihood accuracy, and between likelihood loss and each
accuracy (negative: lower loss, higher accuracy). Responses are cached
(.promptascent/cache), so a rerun costs nothing.

    .venv/bin/python benchmarks/likelihood_agreement.py [--tasks navigate,snarks]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, log, machine, table, write_result

import promptascent
from promptascent.config.task import task_from_dict
from promptascent.evaluate import evaluate_prompt
from promptascent.prompts.answer_format import answer_format_line
from promptascent.prompts.prompt import Prompt
from promptascent.runner import RunSettings, plan

DATASETS = ROOT.parent / "shared" / "datasets" / "bigbench"


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rho with average ranks for ties (None when either side is constant)."""

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        out = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return out

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return None if not vx or not vy else cov / (vx * vy) ** 0.5


def task_spec(name: str, args: argparse.Namespace, scoring: str) -> Any:
    return task_from_dict(
        {
            "name": name,
            "data": {"folder": str(DATASETS / name), "limits": {"dev": args.examples}},
            "metric": "choice_accuracy",
            "task_params": {"max_tokens": args.max_tokens},
            "evaluation": {"scoring": scoring, "concurrency": 2},
            "seed": 0,
        }
    )


def candidates(name: str, args: argparse.Namespace, settings: RunSettings) -> list[Prompt]:
    prompts: dict[str, Prompt] = {}
    for optimizer in args.optimizers.split(","):
        log(f"[{name}] {optimizer} run ({args.budget} task calls)")
        result = promptascent.optimize(
            task_spec(name, args, "generate"),
            optimizer=optimizer,
            budget={"task_calls": args.budget},
            settings=settings,
        )
        with sqlite3.connect(result.run_dir / "run.sqlite") as conn:
            for (blob,) in conn.execute("SELECT prompt FROM candidates ORDER BY seq"):
                prompt = Prompt.from_dict(json.loads(blob))
                prompts.setdefault(prompt.id, prompt)
    return list(prompts.values())


def scores(name: str, prompts: list[Prompt], args: argparse.Namespace, settings: RunSettings):
    gen_plan = plan(task_spec(name, args, "generate"))
    lik_plan = plan(task_spec(name, args, "likelihood"))
    fmt = answer_format_line(list(gen_plan.data.train))
    rows = []
    for i, prompt in enumerate(prompts):
        log(f"[{name}] candidate {i + 1}/{len(prompts)} {prompt.id}")
        gen, _ = evaluate_prompt(gen_plan, prompt, "dev", settings)
        formatted = replace(prompt, output_format=prompt.output_format or fmt)
        gen_fmt, _ = evaluate_prompt(gen_plan, formatted, "dev", settings)
        lik, _ = evaluate_prompt(lik_plan, prompt, "dev", settings)
        rows.append(
            {
                "prompt_id": prompt.id,
                "generate": gen.mean,
                "generate_unparsed": gen.unparsed,
                "generate_format_line": gen_fmt.mean,
                "likelihood": lik.mean,
                "loss": lik.mean_loss,
            }
        )
    return rows


def correlations(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    col = {k: [float(r[k]) for r in rows] for k in rows[0] if k != "prompt_id"}
    return {
        "generate~likelihood": spearman(col["generate"], col["likelihood"]),
        "generate_format_line~likelihood": spearman(col["generate_format_line"], col["likelihood"]),
        "loss~likelihood": spearman(col["loss"], col["likelihood"]),
        "loss~generate": spearman(col["loss"], col["generate"]),
        "loss~generate_format_line": spearman(col["loss"], col["generate_format_line"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="sports_understanding,navigate,snarks")
    ap.add_argument("--optimizers", default="ape,random,opro")
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--examples", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--runs-dir", type=Path, default=Path("/tmp/pa-agreement-runs"))
    args = ap.parse_args()
    settings = RunSettings(runs_dir=args.runs_dir)
    info = machine()
    out: dict[str, Any] = {"machine": info, "args": {**vars(args), "runs_dir": str(args.runs_dir)}}
    table_rows = []
    for name in args.tasks.split(","):
        prompts = candidates(name, args, settings)
        rows = scores(name, prompts, args, settings)
        corr = correlations(rows)
        out[name] = {"candidates": rows, "spearman": corr}
        table_rows.append(
            [name, str(len(rows))] + ["-" if v is None else f"{v:+.2f}" for v in corr.values()]
        )
    header = ["task", "cands", "gen~lik", "gen+fmt~lik", "loss~lik", "loss~gen", "loss~gen+fmt"]
    out["table"] = table(table_rows, header)
    print(out["table"])
    log(f"written to {write_result('likelihood_agreement', out)}")


if __name__ == "__main__":
    main()
