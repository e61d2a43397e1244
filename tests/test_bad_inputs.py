"""The corpus of bad inputs: every mistake a user plausibly makes gets a one-line error
naming the problem and the file, line or key, exit status 2, and no traceback unless
--debug.

Each folder of tests/bad_inputs/ is one case: its input files plus case.yaml with
  args      the command line after `promptascent`, run in a copy of the folder (cwd)
  expect    a substring the error line must contain (for exit 0: the standard output)
  also      more substrings the error line must contain
  absent    substrings that must appear nowhere in the output (a secret, say)
  exit      the exit status, default 2; 0 for an input that must load fine (a BOM)
  debug     true: with --debug the same error also shows a traceback
  generate  files written at test time in an encoding ({path, encoding, text}), so
            that non-UTF-8 and BOM files stay byte-exact whatever edits the repository
  setup     recorded_run: a minimal recorded run in runs/recorded (for `export`)
The copy lives in <tmp>/tests/bad_inputs/<case> beside a link <tmp>/examples to the
repository's examples, so a case may use ../../../examples/data/navigate.

Every case fails in validation, before any model call; the cases run as concurrent
subprocesses (each imports the package), so the whole file takes a few seconds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CASES_DIR = Path(__file__).resolve().parent / "bad_inputs"
CASE_KEYS = {"args", "expect", "also", "absent", "exit", "debug", "generate", "setup"}
TIMEOUT = 120


@dataclass(frozen=True)
class Case:
    name: str
    args: list[str]
    expect: str
    also: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    exit: int = 2
    debug: bool = False
    generate: list[dict[str, str]] = field(default_factory=list)
    setup: str | None = None


def load_case(name: str) -> Case:
    raw = yaml.safe_load((CASES_DIR / name / "case.yaml").read_text(encoding="utf-8"))
    assert isinstance(raw, dict), f"{name}/case.yaml: not a mapping"
    unknown = set(raw) - CASE_KEYS
    assert not unknown, f"{name}/case.yaml: unknown keys {sorted(unknown)}"
    assert isinstance(raw.get("args"), list) and raw["args"], f"{name}/case.yaml: no args"
    assert isinstance(raw.get("expect"), str) and raw["expect"], f"{name}/case.yaml: no expect"
    return Case(name=name, **raw)


CASE_NAMES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.yaml").is_file())
CASES = {name: load_case(name) for name in CASE_NAMES}
DEBUG_CASES = [name for name, case in CASES.items() if case.debug]


# --------------------------------------------------------------------------- running


def prepare(case: Case, root: Path) -> Path:
    """A copy of the case folder in root/tests/bad_inputs/, with generated files."""
    (root / "examples").symlink_to(REPO / "examples", target_is_directory=True)
    folder = root / "tests" / "bad_inputs" / case.name
    shutil.copytree(CASES_DIR / case.name, folder)
    (folder / "case.yaml").unlink()
    for spec in case.generate:
        path = folder / spec["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(spec["text"].encode(spec["encoding"]))
    if case.setup == "recorded_run":
        record_run(folder / "runs" / "recorded")
    elif case.setup is not None:
        raise AssertionError(f"{case.name}: unknown setup {case.setup!r}")
    return folder


def record_run(run_dir: Path) -> None:
    """A run store holding one finished candidate, as `export` reads it."""
    from promptascent.prompts.prompt import Prompt
    from promptascent.search.pool import Candidate
    from promptascent.store.run_store import RunStore

    store = RunStore(run_dir)
    try:
        seed = Candidate(Prompt("Answer True or False.\n\n{input}"), operation="seed")
        store.add_candidate(seed.record())
        store.put("status", "finished")
        store.put("result", {"best_candidate": seed.id})
    finally:
        store.close()


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTASCENT")}
    return subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd,
        env={**env, "COLUMNS": "80"},  # a narrow terminal must not wrap the error line
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


Key = tuple[str, bool]  # (case name, with --debug)


@pytest.fixture(scope="module")
def results(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Key, Future[subprocess.CompletedProcess[str]]]]:
    """Starts every selected case at once on a few workers; each test awaits its own."""
    wanted: list[Key] = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if getattr(item, "module", None) is sys.modules[__name__] and "case_name" in params:
            debug = getattr(item, "originalname", "") == "test_debug_shows_traceback"
            wanted.append((params["case_name"], debug))
    pool = ThreadPoolExecutor(max_workers=max(2, min(8, 2 * (os.cpu_count() or 1))))
    futures: dict[Key, Future[subprocess.CompletedProcess[str]]] = {}
    for name, debug in dict.fromkeys(wanted):
        case = CASES[name]
        folder = prepare(case, tmp_path_factory.mktemp(name))
        args = [*case.args, "--debug"] if debug else case.args
        futures[(name, debug)] = pool.submit(run_cli, args, folder)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def outcome(
    results: dict[Key, Future[subprocess.CompletedProcess[str]]], key: Key
) -> subprocess.CompletedProcess[str]:
    return results[key].result(timeout=TIMEOUT + 30)


def describe(proc: subprocess.CompletedProcess[Any]) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_bad_input(
    case_name: str, results: dict[Key, Future[subprocess.CompletedProcess[str]]]
) -> None:
    case = CASES[case_name]
    proc = outcome(results, (case_name, False))
    assert proc.returncode == case.exit, describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    for text in case.absent:
        assert text not in proc.stderr + proc.stdout, describe(proc)
    if case.exit == 0:
        assert "error" not in proc.stderr, describe(proc)
        assert case.expect in proc.stdout, describe(proc)
        return
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), describe(proc)
    for text in (case.expect, *case.also):
        assert text in lines[0], f"{text!r} not in the error line\n{describe(proc)}"


@pytest.mark.parametrize("case_name", DEBUG_CASES)
def test_debug_shows_traceback(
    case_name: str, results: dict[Key, Future[subprocess.CompletedProcess[str]]]
) -> None:
    case = CASES[case_name]
    proc = outcome(results, (case_name, True))
    assert proc.returncode == 2, describe(proc)
    assert "Traceback (most recent call last)" in proc.stderr, describe(proc)
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("error: ") and case.expect in last, describe(proc)


def test_the_corpus_covers_the_tracker() -> None:
    """The kinds of mistake the tracker lists each have at least one case."""
    kinds = [
        "yaml-",
        "key-unknown",
        "key-missing",
        "type-",
        "data-file-empty",
        "data-file-missing",
        "data-row-without-target",
        "data-not-utf8",
        "data-bom",
        "template-field-not-in-data",
        "optimizer-unknown",
        "backend-unknown",
        "budget-negative",
        "budget-zero",
        "budget-flag-typo",
        "option-without-equals",
        "metric-typo",
        "data-folder-without-train",
        "csv-ragged-row",
        "data-duplicate-id",
        "data-target-not-in-choices",
        "export-unknown-format",
        "split-unknown",
    ]
    for kind in kinds:
        assert any(name.startswith(kind) for name in CASE_NAMES), kind
    assert DEBUG_CASES, "some case must check --debug"
