"""Candidates as rows (a list of dicts, and a pandas DataFrame when pandas is there),
for notebooks: what the report's lineage shows, one flat row per candidate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptascent.report.run_facts import RunFacts


def candidate_rows(facts: RunFacts) -> list[dict[str, Any]]:
    """One dict per candidate, in the order they were proposed. Every row has the same
    keys: id, step, operation, parents (a list), note, instruction, system, demos (how
    many), output_format, length (characters, as the report's length plot), is_seed and
    is_best (bools), and per split the candidate was scored on anywhere in the run,
    `<split>_score` and `<split>_n` (None where this candidate was not scored on it)."""
    splits = sorted({s for c in facts.candidates for s in c.scores})
    rows = []
    for c in facts.candidates:
        row: dict[str, Any] = {
            "id": c.id,
            "step": c.step,
            "operation": c.operation,
            "parents": list(c.parents),
            "note": c.note,
            "instruction": c.prompt.instruction,
            "system": c.prompt.system,
            "demos": len(c.prompt.demos),
            "output_format": c.prompt.output_format,
            "length": c.length,
            "is_seed": c.id == facts.seed_id,
            "is_best": c.id == facts.best_id,
        }
        for split in splits:
            s = c.scores.get(split)
            row[f"{split}_score"] = None if s is None else s["mean"]
            row[f"{split}_n"] = None if s is None else s["n"]
        rows.append(row)
    return rows


def to_dataframe(rows: Sequence[dict[str, Any]]) -> Any:
    """The rows as a pandas DataFrame. pandas is not a dependency of promptascent:
    without it, ImportError saying so (the rows themselves need nothing)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            "to_dataframe() needs pandas, which promptascent does not install: "
            "`pip install pandas`, or use candidate_rows() (a list of dicts)"
        ) from None
    return pd.DataFrame(list(rows))
