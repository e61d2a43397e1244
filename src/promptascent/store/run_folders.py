"""Run folders: the id a new run gets, and whether a folder holds a started run."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from promptascent.store.run_store import FILENAME, RunStore


def new_run_id(task: str, optimizer: str) -> str:
    """A new run's folder name: time, task, optimizer and a random tail (two runs
    started in the same second do not collide)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in task)[:40]
    return f"{stamp}-{safe}-{optimizer}-{secrets.token_hex(2)}"


def recorded(run_dir: Path) -> bool:
    """Whether a run folder holds a started run (a folder killed before it recorded its
    configuration holds nothing worth keeping and may be started again)."""
    if not (run_dir / FILENAME).exists():
        return False
    store = RunStore.open_existing(run_dir)
    try:
        return store.get("config") is not None
    finally:
        store.close()
