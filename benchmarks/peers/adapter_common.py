"""Shared by the adapters, which run inside each peer library's own venv (stdlib only).

An adapter is started as `<venv python> adapter_X.py CONFIG.json`. The config holds the
task data, the proxy URLs for each role and phase, the budget and the output path. The
adapter writes its result JSON after every stage, so a run that is killed still leaves
what it had (the seed prompt's test outputs first).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# No downloads at run time: litellm's model price map ships with the package.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OPENAI_API_KEY", "none")


@dataclass
class Config:
    """What run_peers.py hands an adapter."""

    library: str
    optimizer: str
    task: str
    seed_prompt: str
    choices: list[str]
    train: list[dict[str, Any]]
    dev: list[dict[str, Any]]
    test: list[dict[str, Any]]
    urls: dict[str, str]  # roles: "task" and "meta" (optimize phase), "test"
    budget: int
    task_max_tokens: int
    meta_max_tokens: int
    opt_timeout: float
    out: str
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def load_config() -> Config:
    return Config(**json.loads(Path(sys.argv[1]).read_text()))


# ----------------------------------------------------------------------------- metric


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().replace("_", " ")


def first_named_choice(output: str, choices: list[str]) -> str | None:
    """The choice named earliest in output as a whole word or phrase (longest at a tie).

    Same rule as promptascent's choice_accuracy: case-insensitive, "_" read as a space,
    no letter or digit directly before or after; None when no choice is named.
    """
    text = _fold(output or "")
    best: tuple[int, int] | None = None
    found: str | None = None
    for choice in choices:
        words = _fold(choice).split()
        if not words:
            continue
        body = r"\s+".join(re.escape(w) for w in words)
        m = re.search(rf"(?<![^\W_]){body}(?![^\W_])", text)
        if m is None:
            continue
        key = (m.start(), -(m.end() - m.start()))
        if best is None or key < best:
            best, found = key, choice
    return found


def choice_score(output: str, target: str, choices: list[str]) -> float:
    """1.0 when the first choice the output names is the target, else 0.0."""
    pred = first_named_choice(output, choices)
    return 1.0 if pred is not None and _fold(pred) == _fold(target) else 0.0


# ----------------------------------------------------------------------------- results


class Result:
    """The adapter's output file, rewritten after every stage."""

    def __init__(self, cfg: Config, version: str) -> None:
        self.path = Path(cfg.out)
        self.data: dict[str, Any] = {
            "library": cfg.library,
            "version": version,
            "optimizer": cfg.optimizer,
            "task": cfg.task,
            "seed_prompt": cfg.seed_prompt,
            "best_prompt": None,
            "test_outputs_seed": {},
            "test_outputs_best": {},
            "test_raw_seed": {},
            "test_raw_best": {},
            "status": "running",
            "stage": "start",
            "error": None,
            "notes": [],
            "timings": {},
        }
        self.save()

    def set(self, **values: Any) -> None:
        self.data.update(values)
        self.save()

    def note(self, text: str) -> None:
        self.data["notes"].append(text)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False, default=str))
        os.replace(tmp, self.path)


def timed(result: Result, stage: str, fn: Callable[[], Any]) -> Any:
    """Runs fn as the named stage and records its wall time."""
    result.set(stage=stage)
    began = time.monotonic()
    try:
        return fn()
    finally:
        result.data["timings"][stage] = round(time.monotonic() - began, 1)
        result.save()


def run_with_timeout(fn: Callable[[], Any], timeout: float) -> tuple[str, Any, str | None]:
    """Runs fn in a daemon thread.

    Returns ("ok", value, None), ("crashed", None, traceback) or ("timeout", None, text).
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException:
            box["error"] = traceback.format_exc()

    thread = threading.Thread(target=target, name="optimize", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return "timeout", None, f"optimisation still running after {timeout:.0f} s"
    if "error" in box:
        return "crashed", None, box["error"]
    return "ok", box.get("value"), None


def finish(result: Result, status: str, error: str | None = None) -> None:
    """Writes the final status and exits at once (abandoning a timed-out optimiser thread)."""
    result.set(status=status, error=error, stage="done")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
