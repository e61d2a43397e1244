"""End to end: the CLI as the README runs it, on the real embedded model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def tiny_task(tmp_path: Path) -> Path:
    task = tmp_path / "tiny.yaml"
    task.write_text(
        f"name: tiny-navigate\n"
        f"data:\n  folder: {REPO / 'examples/data/navigate'}\n"
        "  limits: {train: 10, dev: 8, test: 12}\n"
        "models: {task: embedded, optimizer: embedded, judge: embedded}\n"
        "task_params: {max_tokens: 16}\n"
        "optimizer: {name: ape, num_candidates: 2, eval_examples: 4, rounds: 0, top_k: 1,"
        " final_k: 2}\n"
        "budget: {task_calls: 200}\n"
        "seed: 0\n",
        encoding="utf-8",
    )
    return task


@pytest.mark.embedded
def test_optimize_then_runs_show_export(tmp_path: Path, tiny_task: Path) -> None:
    out = cli("optimize", str(tiny_task), "--budget", "task_calls=150", cwd=tmp_path).stdout
    assert "held-out test split" in out and "run written to" in out
    run_dir = Path(out.split("run written to", 1)[1].split()[0])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["test"]["seed"]["n"] == 12 and result["search_usage"]["task"]["calls"] <= 150
    assert result["usage"]["task"]["model_calls"] > 0

    listing = cli("runs", cwd=tmp_path).stdout
    assert run_dir.name in listing
    shown = cli("show", run_dir.name[:15], cwd=tmp_path).stdout
    assert "candidates" in shown and result["best_candidate"] in shown

    messages = json.loads(cli("export", run_dir.name, "--format", "messages", cwd=tmp_path).stdout)
    assert messages[-1]["role"] == "user" and "{input}" in messages[-1]["content"]
    as_json = json.loads(cli("export", run_dir.name, "--format", "json", cwd=tmp_path).stdout)
    assert as_json["id"] == result["best_candidate"]

    # A warm rerun answers everything from the cache.
    again = cli("optimize", str(tiny_task), "--budget", "task_calls=150", "-q", cwd=tmp_path).stdout
    run2 = Path(again.split("run written to", 1)[1].split()[0])
    warm = json.loads((run2 / "result.json").read_text())
    assert (
        warm["usage"]["task"]["model_calls"] == 0
        and warm["best_candidate"] == result["best_candidate"]
    )

    # eval scores a prompt file on a split
    prompt_file = tmp_path / "p.txt"
    prompt_file.write_text("Answer True or False.\n\n{input}")
    ev = cli(
        "eval", str(tiny_task), "--prompt", str(prompt_file), "--split", "dev", cwd=tmp_path
    ).stdout
    assert "dev:" in ev and "n=8" in ev


@pytest.mark.embedded
def test_dry_run_estimates_and_spends_nothing(tmp_path: Path, tiny_task: Path) -> None:
    out = cli("optimize", str(tiny_task), "--dry-run", cwd=tmp_path).stdout
    assert "estimate" in out and "nothing was spent" in out
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("name: x\ndata: {folder: nowhere}\nbogus: 1\n", "unknown key 'bogus'"),
        ("name: [unclosed\n", "invalid YAML"),
        ("data: {folder: nowhere}\n", "missing key 'name'"),
    ],
)
def test_bad_task_file_is_one_line_error_exit_2(tmp_path: Path, content: str, needle: str) -> None:
    task = tmp_path / "bad.yaml"
    task.write_text(content)
    proc = cli("optimize", str(task), cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert needle in proc.stderr and "bad.yaml" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_unknown_optimizer_flag_is_an_error(tmp_path: Path, tiny_task: Path) -> None:
    proc = cli("optimize", str(tiny_task), "--optimizer", "nope", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "unknown optimizer 'nope'" in proc.stderr


def test_show_unknown_run(tmp_path: Path) -> None:
    proc = cli("show", "missing", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "no run 'missing'" in proc.stderr


@pytest.mark.embedded
def test_optimize_and_eval_scored_by_likelihood_on_the_embedded_model(
    tmp_path: Path, tiny_task: Path
) -> None:
    """Every example gets an answer (no unparsed output), the losses are reported, and
    a rerun is answered from the cache: the likelihood calls are cached like completions."""
    dry = cli("optimize", str(tiny_task), "--scoring", "likelihood", "--dry-run", cwd=tmp_path)
    assert "scoring: likelihood (sum, no calibration)" in dry.stdout
    args = ("optimize", str(tiny_task), "--scoring", "likelihood", "--budget", "task_calls=150")
    out = cli(*args, cwd=tmp_path).stdout
    assert "scoring: likelihood" in out and "mean loss of the gold choice" in out
    run_dir = Path(out.split("run written to", 1)[1].split()[0])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["scoring"].startswith("likelihood")
    for ev in (result["test"]["seed"], result["test"]["best"]):
        assert ev["n"] == 12 and ev["unparsed"] == 0 and 0 < ev["mean_loss"] < 5
        assert set(ev["predictions"]) <= {"True", "False"}
    assert result["usage"]["task"]["completion_tokens"] == 0
    again = cli(*args, "-q", cwd=tmp_path).stdout
    warm = json.loads(
        (Path(again.split("run written to", 1)[1].split()[0]) / "result.json").read_text()
    )
    assert warm["usage"]["task"]["model_calls"] == 0
    assert warm["best_candidate"] == result["best_candidate"]
    assert warm["test"] == result["test"]
    ev = cli("eval", str(tiny_task), "--scoring", "likelihood", "--split", "dev", cwd=tmp_path)
    assert "dev:" in ev.stdout and "unparsed=0" in ev.stdout and "loss=" in ev.stdout


def test_likelihood_on_an_http_model_that_cannot_score_fails_in_the_dry_run(
    tmp_path: Path, tiny_task: Path
) -> None:
    proc = cli(
        "optimize", str(tiny_task), "--scoring", "likelihood", "--dry-run",
        "--task-model", "openai:m@http://127.0.0.1:9/v1", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "cannot score continuations" in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_show_lists_every_candidate_with_its_step_operation_parents_and_scores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from web_support import finished_run

    from promptascent.cli.main import main
    from promptascent.store.run_store import RunStore

    run_dir = finished_run(tmp_path)
    store = RunStore.open_existing(run_dir)
    try:
        stored = store.candidates()
    finally:
        store.close()
    monkeypatch.setenv("COLUMNS", "400")
    monkeypatch.setattr(
        "sys.argv", ["promptascent", "show", run_dir.name, "--runs-dir", str(run_dir.parent)]
    )
    try:
        main()
    except SystemExit as ended:
        assert not ended.code
    shown = capsys.readouterr().out
    assert f"{len(stored)} candidates" in shown and len(stored) >= 3
    rows: dict[str, list[str]] = {}  # id -> its cells, a cell's wrapped lines joined
    last: list[str] = []
    for line in shown.splitlines():
        if line.count("│") < 7:
            continue
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells[0]:
            last = rows.setdefault(cells[0], cells)
        else:
            last[:] = [" ".join(filter(None, pair)) for pair in zip(last, cells, strict=True)]
    for c in stored:
        cells = rows[c["id"]]
        assert cells[1] == str(c["step"]) and cells[2].startswith(c["operation"])
        assert cells[3].replace(" ", "") == ",".join(c["parents"])
        for split, score in c["scores"].items():
            assert f"{split} " in cells[4] and f"(n={score['n']})" in cells[4]


def test_refresh_cache_on_the_command_line_pays_for_every_call_again(tmp_path: Path) -> None:
    """A rerun with the cache answers from it; `--refresh-cache` calls the models
    again and stores their replies, so the next rerun is answered from the cache."""
    from scripted import CLI_MODELS, write_animal_task

    options = "optimizer: {name: ape, num_candidates: 3, eval_examples: 6, rounds: 0}\n"
    task = write_animal_task(tmp_path / "t", extra=CLI_MODELS + options)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "PA_CALL_DELAY": "0"}

    def paid(*flags: str) -> int:
        proc = subprocess.run(
            [sys.executable, "-m", "promptascent", "optimize", str(task), "-q", *flags],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        run_dir = Path(proc.stdout.split("run written to", 1)[1].split()[0])
        usage = json.loads((run_dir / "result.json").read_text())["usage"]
        return sum(int(u["model_calls"]) for u in usage.values())

    first = paid()
    assert first > 0 and paid() == 0
    assert paid("--refresh-cache") == first
    assert paid() == 0
