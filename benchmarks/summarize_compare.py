"""Tables over several seeds from compare_optimizers.py results files.

    ../.venv/bin/python summarize_compare.py compare_optimizers_600_3seeds.json

Prints, as markdown: per task and optimizer the test score of the best prompt over
the seeds (mean, min-max), the mean difference to the seed prompt and in how many
seeds its 95% CI lies above 0; then per optimizer over every (task, seed). Files are
read from benchmarks/results (or as given); later rows for the same (task, optimizer,
seed) replace earlier ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _common import RESULTS

Key = tuple[str, str, int]


def load_rows(names: list[str]) -> dict[Key, dict]:
    rows: dict[Key, dict] = {}
    for name in names:
        path = Path(name) if Path(name).exists() else RESULTS / name
        for r in json.loads(path.read_text())["rows"]:
            rows[(r["task"], r["optimizer"], r["seed"])] = r
    return rows


def per_task(rows: dict[Key, dict]) -> str:
    by: dict[tuple[str, str], list[dict]] = {}
    for (task, optimizer, _), r in sorted(rows.items(), key=lambda kv: kv[0][2]):
        if r["test_best"] and r["difference"]:
            by.setdefault((task, optimizer), []).append(r)
    lines = [
        "| task | optimizer | seeds | test: seed prompt | test: best, mean (min-max) "
        "| best - seed, mean | seeds with CI above 0 | task calls, mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (task, optimizer), rs in by.items():
        best = [r["test_best"]["mean"] for r in rs]
        seed_scores = sorted({round(r["test_seed"]["mean"], 3) for r in rs})
        diff = statistics.mean(r["difference"]["mean"] for r in rs)
        above = sum(r["difference"]["ci_low"] > 0 for r in rs)
        calls = statistics.mean(r["task_calls"] for r in rs)
        lines.append(
            f"| {task} | {optimizer} | {len(rs)} | {', '.join(f'{s:.3f}' for s in seed_scores)} "
            f"| {statistics.mean(best):.3f} ({min(best):.2f}-{max(best):.2f}) | {diff:+.3f} "
            f"| {above}/{len(rs)} | {calls:.0f} |"
        )
    return "\n".join(lines)


def per_optimizer(rows: dict[Key, dict]) -> str:
    by: dict[str, list[dict]] = {}
    for (_, optimizer, _), r in rows.items():
        if r["difference"]:
            by.setdefault(optimizer, []).append(r)
    lines = [
        "| optimizer | runs | mean best - seed | sd over runs | CI above 0 | CI spans 0 "
        "| CI below 0 | returned the seed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rs in by.items():
        ds = [r["difference"] for r in rs]
        means = [d["mean"] for d in ds]
        above = sum(d["ci_low"] > 0 for d in ds)
        below = sum(d["ci_high"] < 0 for d in ds)
        kept = sum(r["test_best"]["prompt_id"] == r["test_seed"]["prompt_id"] for r in rs)
        lines.append(
            f"| {name} | {len(ds)} | {statistics.mean(means):+.3f} "
            f"| {statistics.pstdev(means):.3f} | {above} | {len(ds) - above - below} | {below} "
            f"| {kept} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("files", nargs="+", help="results files (in benchmarks/results)")
    args = ap.parse_args()
    rows = load_rows(args.files)
    print(per_task(rows))
    print()
    print(per_optimizer(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
