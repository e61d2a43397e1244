"""How each run of a compare_optimizers.py result searched and selected: candidates
scored on dev examples (the seed included, and besides it), task calls spent by the
search, the split the winner was chosen on (and on how many dev examples), whether
the budget only allowed screening, and whether the seed came back. Reads each run's
store; works on runs of older versions too (screening is inferred from the split).

    .venv/bin/python benchmarks/final_selection_table.py RESULT.json [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from promptascent.store.run_store import RunStore

FINAL_SPLITS = ("dev", "dev-final", "cv")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("result", help="a compare_optimizers.py result (JSON)")
    ap.add_argument("--runs-dir", default="/tmp/pa-compare/runs")
    args = ap.parse_args()
    rows = json.loads(Path(args.result).read_text())["rows"]
    print(
        "| task | optimizer | scored (non-seed) | task calls | selected on (examples) "
        "| screening only | returned the seed | test: seed -> best |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        run_dir = Path(args.runs_dir) / row["run_id"]
        result = json.loads((run_dir / "result.json").read_text())
        store = RunStore.open_existing(run_dir)
        try:
            candidates = store.candidates()
        finally:
            store.close()
        scored = [c for c in candidates if any(s.startswith("dev") for s in c["scores"])]
        seed = result["seed_candidate"]
        split = result["selection_split"]
        best = next(c for c in candidates if c["id"] == result["best_candidate"])
        n = best["scores"].get(split, {}).get("n")
        screening = result.get("screening_only", split not in FINAL_SPLITS)
        test = result["test"]
        cells = [
            row["task"],
            row["optimizer"],
            f"{len(scored)} ({sum(c['id'] != seed for c in scored)})",
            str(int(row["task_calls"])),
            f"{split} ({n})",
            "yes" if screening else "no",
            "yes" if result["best_candidate"] == seed else "no",
            f"{test['seed']['mean']:.3f} -> {test['best']['mean']:.3f}",
        ]
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
