"""What the web app's pages show, read from the runs folder: runs, compares, one run
(candidates, scores, lineage, best so far, status), one candidate (prompt, outputs,
span comments). Read-only: a store is opened only when its file exists, and nothing
here writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from promptascent.errors import PromptascentError, StorageError
from promptascent.preference.duel import Record
from promptascent.preference.loop import standings
from promptascent.preference.session import CONFIG_KEY as PREFER_CONFIG
from promptascent.search.splits import CV, DEV, FINAL, SUBSET
from promptascent.span_feedback import SpanComment
from promptascent.store.run_lock import current_status
from promptascent.store.run_store import FILENAME, RunStore
from promptascent.web.workers import RUN_ID

COMPARE_FILE = "compare.json"
OUTPUTS_SHOWN = 20  # outputs per split on a candidate's page


class NotFound(Exception):
    """No such run, compare or candidate (HTTP 404)."""


def run_folder(runs_dir: Path, run_id: str) -> Path:
    """The folder of run `run_id` (NotFound unless it is a run in `runs_dir`)."""
    if not RUN_ID.fullmatch(run_id) or not (runs_dir / run_id / FILENAME).is_file():
        raise NotFound(f"no run {run_id!r}")
    return runs_dir / run_id


def compare_folder(runs_dir: Path, name: str) -> Path:
    if not RUN_ID.fullmatch(name) or not (runs_dir / name / COMPARE_FILE).is_file():
        raise NotFound(f"no compare {name!r}")
    return runs_dir / name


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every run in the folder, newest first: id, kind, status, test scores."""
    if not runs_dir.is_dir():
        return []
    rows = []
    folders = [
        d for d in runs_dir.iterdir() if (d / FILENAME).is_file() and RUN_ID.fullmatch(d.name)
    ]
    for d in sorted(folders, key=lambda d: (d / FILENAME).stat().st_mtime, reverse=True):
        row: dict[str, Any] = {"id": d.name, "kind": "optimize", "status": "?", "test": None}
        try:
            store = RunStore(d)
        except (StorageError, PromptascentError):
            rows.append({**row, "status": "unreadable"})
            continue
        try:
            row["status"] = current_status(d, store.get("status", "?"))
            if store.get(PREFER_CONFIG) is not None:
                row["kind"] = "prefer"
            result = store.get("result")
            if result and result["test"]["best"]:
                row["test"] = {
                    "seed": result["test"]["seed"]["mean"],
                    "best": result["test"]["best"]["mean"],
                }
        finally:
            store.close()
        rows.append(row)
    return rows


def list_compares(runs_dir: Path) -> list[dict[str, Any]]:
    if not runs_dir.is_dir():
        return []
    found = [d for d in runs_dir.iterdir() if (d / COMPARE_FILE).is_file()]
    return [
        {"id": d.name, "task": _compare(d).get("task", "?"), "rows": len(_compare(d)["rows"])}
        for d in sorted(found, key=lambda d: d.name, reverse=True)
        if RUN_ID.fullmatch(d.name)
    ]


def compare_view(folder: Path) -> dict[str, Any]:
    return {"id": folder.name, **_compare(folder)}


def _compare(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / COMPARE_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {"task": "unreadable", "rows": []}
    return data if isinstance(data, dict) and isinstance(data.get("rows"), list) else {"rows": []}


def run_view(run_dir: Path) -> dict[str, Any]:
    """One run as the run page shows it and the live stream sends it."""
    store = RunStore(run_dir)
    try:
        status = current_status(run_dir, store.get("status", "?"))
        result = store.get("result")
        origin = store.get("origin")
        prefer = store.get(PREFER_CONFIG)
        candidates = store.candidates()
        records = [Record.from_dict(r) for r in store.preferences()]
        comments = [SpanComment.from_dict(c) for c in store.span_comments()]
    finally:
        store.close()
    rows = [
        {
            "id": c["id"],
            "step": c["step"],
            "operation": c["operation"],
            "parents": c["parents"],
            "instruction": c["prompt"].get("instruction") or "",
            "scores": {
                split: s["mean"] for split, s in c["scores"].items() if s["mean"] is not None
            },
            "comments": sum(1 for x in comments if x.candidate_id == c["id"]),
        }
        for c in candidates
    ]
    view: dict[str, Any] = {
        "id": run_dir.name,
        "kind": "prefer" if prefer is not None else "optimize",
        "status": status,
        "candidates": rows,
        "best": _best(rows, result),
        "origin": origin,
        "test": None,
    }
    if result and result["test"]["best"]:
        t = result["test"]
        view["test"] = {
            "seed": t["seed"]["mean"],
            "best": t["best"]["mean"],
            "difference": t["difference"],
            "n": t["best"]["n"],
        }
    if prefer is not None:
        view["preferences"] = {
            "recorded": len(records),
            "rounds": prefer.get("rounds"),
            "ranking": [s.to_dict() for s in standings([r["id"] for r in rows], records)]
            if len(rows) >= 2
            else [],
        }
    return view


def _best(rows: list[dict[str, Any]], result: dict[str, Any] | None) -> dict[str, Any] | None:
    """The run's winner once it ended; before, the best so far: the highest score on
    the most selective split scored yet (dev, a smaller final selection, k-fold, then
    the screening subset; scores on different splits are not compared), ties keeping
    the earlier candidate."""
    if result is not None:
        cid = result["best_candidate"]
        row = next((r for r in rows if r["id"] == cid), None)
        split = result.get("selection_split") or DEV
        return None if row is None else {**row, "split": split, "final": True}
    for split in (DEV, FINAL, CV, SUBSET):
        scored = [r for r in rows if split in r["scores"]]
        if scored:
            best = max(scored, key=lambda r: r["scores"][split])  # max keeps the first
            return {**best, "split": split, "final": False}
    return None


def candidate_view(run_dir: Path, candidate_id: str) -> dict[str, Any]:
    """A candidate's prompt, its outputs per split (the first few) and its span
    comments."""
    store = RunStore(run_dir)
    try:
        row = next((c for c in store.candidates() if c["id"] == candidate_id), None)
        if row is None:
            raise NotFound(f"no candidate {candidate_id!r} in run {run_dir.name}")
        outputs = {
            split: store.evaluations(candidate_id, split)[:OUTPUTS_SHOWN] for split in row["scores"]
        }
        comments = store.span_comments(candidate_id)
        status = current_status(run_dir, store.get("status", "?"))
    finally:
        store.close()
    return {
        "run_id": run_dir.name,
        "status": status,
        "id": candidate_id,
        "prompt": row["prompt"],
        "instruction": row["prompt"].get("instruction") or "",
        "operation": row["operation"],
        "step": row["step"],
        "parents": row["parents"],
        "scores": {k: v["mean"] for k, v in row["scores"].items()},
        "outputs": outputs,
        "comments": comments,
    }
