"""Preference runs (promptascent.prefer): scripted task and optimizer models, and a
scripted person who likes polite outputs."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import scripted_prefer
from rich.console import Console
from scripted_prefer import (
    POLITE,
    SCRIPTED_MODELS,
    optimizer_responder,
    prefers_polite,
    task_responder,
    write_inputs_task,
)
from typer.testing import CliRunner

import promptascent
from promptascent.cli.main import app
from promptascent.cli.prefer_ui import TerminalChooser
from promptascent.data.example import Example
from promptascent.errors import ConfigError, ModelRequestError
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.preference.duel import Choice, Duel, Record
from promptascent.prompts.prompt import Prompt
from promptascent.runner import RunSettings
from promptascent.search.pool import Candidate
from promptascent.store.run_store import SCHEMA_VERSION, RunStore

TESTS = Path(__file__).resolve().parent


class Models:
    def __init__(self) -> None:
        self.task = ScriptedLLM(task_responder, model_id="scripted-polite-task")
        self.optimizer = ScriptedLLM(optimizer_responder, model_id="scripted-paraphraser")

    def settings(self, root: Path, *, cache: bool = False) -> RunSettings:
        return RunSettings(
            runs_dir=root / "runs",
            cache_dir=root / "cache" if cache else None,
            backends={"task": self.task, "optimizer": self.optimizer},
        )


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return write_inputs_task(tmp_path / "task")


def outcome(records: tuple) -> list[tuple]:
    return [(r.round, r.example_id, r.candidate_a, r.candidate_b, r.choice) for r in records]


def test_the_polite_prompt_wins_with_its_win_record(tmp_path: Path, task: Path) -> None:
    models = Models()
    seen: list[Duel] = []

    def person(duel: Duel) -> Choice:
        seen.append(duel)
        return prefers_polite(duel)

    result = promptascent.prefer(
        task, person, candidates=4, rounds=12, settings=models.settings(tmp_path), run_id="p"
    )
    assert result.status == "finished" and len(result.records) == 12 == len(seen)
    assert "Politely" in result.best_prompt.instruction
    best = result.best
    assert best.wins >= 5 and best.losses == 0 and best.ties == 0
    assert best.strength > max(s.strength for s in result.standings[1:])
    # The seed and three paraphrases (the empty reply was skipped and reported), each
    # compared; the polite one was shown as A in some duels and as B in others.
    assert len(result.candidates) == 4 and result.candidates[0].operation == "seed"
    assert {c.operation for c in result.candidates[1:]} == {"paraphrase"}
    assert all(s.duels > 0 for s in result.standings)
    assert {d.candidate_a for d in seen} >= {best.candidate_id}
    assert {d.candidate_b for d in seen} >= {best.candidate_id}
    assert any("empty" in n for n in result.notes)
    # Labels are not needed: the task has inputs only, and no metric.
    assert all(d.example.target is None for d in seen)

    store = RunStore.open_existing(result.run_dir)
    try:
        stored = [Record.from_dict(r) for r in store.preferences()]
        candidates = store.candidates()
        summary, status = store.get("prefer_summary"), store.get("status")
    finally:
        store.close()
    assert outcome(tuple(stored)) == outcome(result.records)
    assert stored[0].output_a and stored[0].input in {d.example.input_text for d in seen}
    seed_id = result.candidates[0].id
    assert [c["parents"] for c in candidates[1:]] == [[seed_id]] * 3
    assert status == "finished" and summary["best_candidate"] == best.candidate_id
    assert summary["ranking"][0]["wins"] == best.wins
    written = json.loads((result.run_dir / "preferences.json").read_text())
    assert written["best_candidate"] == best.candidate_id
    assert "Politely" in (result.run_dir / "best_prompt.txt").read_text()


def test_every_record_is_handed_over_as_it_is_made(tmp_path: Path, task: Path) -> None:
    models = Models()
    seen: list[int] = []

    def person(duel: Duel) -> Choice:
        # the previous duel is in the store before the next one is shown
        store = RunStore.open_existing(tmp_path / "runs" / "p")
        try:
            assert len(store.preferences()) == duel.round == len(seen)
        finally:
            store.close()
        return "skip" if duel.round == 1 else prefers_polite(duel)

    result = promptascent.prefer(
        task,
        person,
        rounds=4,
        settings=models.settings(tmp_path),
        run_id="p",
        on_record=lambda r: seen.append(r.round),
    )
    assert seen == [0, 1, 2, 3] and result.records[1].choice == "skip"
    assert result.judged == 3


def test_quit_then_resume_continues_the_same_duels_without_paying_again(
    tmp_path: Path, task: Path
) -> None:
    whole = Models()
    baseline = promptascent.prefer(
        task, prefers_polite, rounds=10, settings=whole.settings(tmp_path / "a"), run_id="p"
    )

    models = Models()

    def quits_at_5(duel: Duel) -> Choice:
        return "quit" if duel.round == 5 else prefers_polite(duel)

    first = promptascent.prefer(
        task, quits_at_5, rounds=10, settings=models.settings(tmp_path / "b"), run_id="p"
    )
    assert first.status == "quit" and len(first.records) == 5
    paid_first = len(models.task.requests), len(models.optimizer.requests)

    resumed = promptascent.prefer(
        task, prefers_polite, resume=first.run_dir, settings=models.settings(tmp_path / "b")
    )
    assert resumed.status == "finished"
    assert outcome(resumed.records) == outcome(baseline.records)
    assert resumed.standings == baseline.standings
    # Nothing paid before the quit (the duel on screen included) was paid again, and
    # the two sessions together paid what the uninterrupted run paid.
    assert len(models.optimizer.requests) == paid_first[1]
    assert len(models.task.requests) == len(whole.task.requests)
    assert len(models.task.requests) > paid_first[0]
    # The budget saw every call once: the replayed ones count as they did.
    assert resumed.usage["task"]["calls"] == baseline.usage["task"]["calls"]
    assert resumed.usage["optimizer"]["calls"] == baseline.usage["optimizer"]["calls"]

    # More rounds later: the run goes on from where it ended.
    more = promptascent.prefer(
        task,
        prefers_polite,
        resume=first.run_dir,
        rounds=14,
        settings=models.settings(tmp_path / "b"),
    )
    assert len(more.records) == 14 and outcome(more.records)[:10] == outcome(baseline.records)


def test_budget_exhaustion_stops_cleanly_and_keeps_the_records(tmp_path: Path) -> None:
    task = write_inputs_task(tmp_path / "task", extra="budget: {task_calls: 7}\n")
    models = Models()
    result = promptascent.prefer(
        task, prefers_polite, rounds=20, settings=models.settings(tmp_path), run_id="p"
    )
    assert result.status == "budget" and result.stopped_by == "task_calls"
    assert 1 <= len(result.records) <= 3
    assert result.usage["task"]["calls"] <= 7
    store = RunStore.open_existing(result.run_dir)
    try:
        assert len(store.preferences()) == len(result.records)
        assert store.get("status") == "budget"
    finally:
        store.close()


def test_a_failed_output_is_recorded_as_a_skip_without_asking(tmp_path: Path, task: Path) -> None:
    def flaky(request: CompletionRequest) -> str:
        if "Shout" in request.messages[-1].content:
            raise ModelRequestError("scripted failure")
        return task_responder(request)

    models = Models()
    models.task = ScriptedLLM(flaky, model_id="flaky")
    asked: list[Duel] = []

    def person(duel: Duel) -> Choice:
        asked.append(duel)
        return prefers_polite(duel)

    result = promptascent.prefer(
        task, person, rounds=10, settings=models.settings(tmp_path), run_id="p"
    )
    errors = [r for r in result.records if r.error]
    assert errors and all(r.choice == "skip" and not r.judged for r in errors)
    assert len(asked) == 10 - len(errors)
    shout = next(c.id for c in result.candidates if "Shout" in c.prompt.instruction)
    assert next(s for s in result.standings if s.candidate_id == shout).duels == 0


def test_candidates_from_an_earlier_run_are_its_best_by_selection_score(
    tmp_path: Path, task: Path
) -> None:
    old = RunStore(tmp_path / "runs" / "old")
    texts = {
        "Which animal is it?": 0.2,
        "Politely name the animal, please.": 0.9,
        "Shout the name of the animal.": 0.5,
        "Name it.": 0.1,
    }
    seed = Prompt("Which animal is it?")
    for text, score in texts.items():
        c = Candidate(Prompt(text), () if text == seed.instruction else (seed.id,), "edit", 1)
        old.add_candidate(c.record())
        old.add_evaluation(
            c.id, "dev", EvaluationResult(c.id, (ExampleResult("e", "x", score),)).record()
        )
    old.close()
    models = Models()
    result = promptascent.prefer(
        task,
        prefers_polite,
        run=tmp_path / "runs" / "old",
        candidates=3,
        rounds=6,
        settings=models.settings(tmp_path),
        run_id="p",
    )
    assert [c.prompt.instruction for c in result.candidates] == [
        "Politely name the animal, please.",
        "Shout the name of the animal.",
        "Which animal is it?",
    ]
    assert result.candidates[0].parents == (seed.id,)
    assert "from run old (dev 0.900)" in result.candidates[0].note
    assert models.optimizer.requests == []  # no proposals needed
    assert result.best.candidate_id == result.candidates[0].id


def test_a_version_2_store_gains_the_preferences_table(tmp_path: Path) -> None:
    run = tmp_path / "v2"
    run.mkdir()
    with sqlite3.connect(run / "run.sqlite") as conn:
        conn.executescript(
            "CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO run VALUES ('schema_version', '2');"
        )
    store = RunStore.open_existing(run)
    try:
        assert store.get("schema_version") == SCHEMA_VERSION
        assert store.preferences() == []

        store.add_preference(Record(0, "e", "cat", "x", "y", "A!", "B!", "B").to_dict())
        (r,) = [Record.from_dict(d) for d in store.preferences()]
        assert (r.winner, r.output_b, r.error) == ("y", "B!", None)
    finally:
        store.close()


def test_resume_needs_a_preference_run(tmp_path: Path) -> None:
    RunStore(tmp_path / "runs" / "opt").close()
    with pytest.raises(ConfigError, match="not a preference run"):
        promptascent.prefer("unused", prefers_polite, resume=tmp_path / "runs" / "opt")


def test_the_terminal_chooser_asks_again_and_quits_on_end_of_input() -> None:
    lines = iter(["x\n", "  B \n", "\n", "tie\n", "s\n", "a\n", "q\n", ""])
    screen = StringIO()
    chooser = TerminalChooser(
        Console(file=screen, width=120), rounds=3, readline=lambda: next(lines)
    )
    duel = Duel(0, Example("e", "[bold]cat[/bold]"), "x", "y", "It is a cat.", f"{POLITE}!")
    assert chooser(duel) == "B"
    assert chooser(duel) == "tie"  # the empty line was an unknown answer
    assert [chooser(duel) for _ in range(3)] == ["skip", "A", "quit"]  # s, a, q
    assert chooser(duel) == "quit"  # end of input
    shown = screen.getvalue()
    assert "unknown answer 'x'" in shown and "duel 1/3" in shown
    assert "[bold]cat[/bold]" in shown  # data is shown as text, never as markup


def cli(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        "COLUMNS": "160",
    }
    return subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_cli_reads_answers_from_a_pipe_and_show_lists_the_win_record(tmp_path: Path) -> None:
    task = write_inputs_task(tmp_path / "task", models=SCRIPTED_MODELS)
    proc = cli(
        "prefer", str(task), "--rounds", "3", "--run-id", "p", "--no-cache",
        cwd=tmp_path, stdin="a\nwhat\nb\nt\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "unknown answer 'what'" in proc.stdout and "ranking after 3 judged duels" in proc.stdout
    assert "run written to" in proc.stdout and "status: all rounds recorded" in proc.stdout
    shown = cli("show", "p", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "win record: 3 judged duels, 0 skipped" in shown.stdout
    assert "preference run, status:" in shown.stdout and "no result recorded" not in shown.stdout
    wrong = cli("optimize", "--resume", "p", cwd=tmp_path)
    assert wrong.returncode == 2
    assert "is a preference run; continue it with `promptascent prefer --resume p`" in wrong.stderr

    # End of input quits cleanly and says how to continue.
    proc = cli("prefer", "--resume", "p", "--rounds", "5", cwd=tmp_path, stdin="a\n")
    assert proc.returncode == 0, proc.stderr
    assert "stopped by you" in proc.stdout and "promptascent prefer --resume p" in proc.stdout
    store = RunStore.open_existing(tmp_path / "runs" / "p")
    try:
        assert len(store.preferences()) == 4 and store.get("status") == "quit"
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["prefer", "missing.yaml"], "missing.yaml: task file not found"),
        (["prefer", "TASK", "--run", "nope"], "no run 'nope'"),
        (["prefer", "--resume", "nope"], "no run 'nope'"),
        (["prefer", "TASK", "--candidates", "1"], "preferences need 2 or more candidates"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    task = write_inputs_task(tmp_path / "task", models=SCRIPTED_MODELS)
    proc = cli(*[str(task) if a == "TASK" else a for a in args], cwd=tmp_path)
    assert proc.returncode == 2 and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def interrupt_at(monkeypatch: pytest.MonkeyPatch, role: str, call: int) -> list[CompletionRequest]:
    """The scripted `role` model of SCRIPTED_MODELS raises KeyboardInterrupt (as
    Ctrl-C would) in its `call`-th call (0: never); returns the calls made to it
    (the ones the journal answers never reach it)."""
    calls: list[CompletionRequest] = []
    responder = task_responder if role == "task" else optimizer_responder

    def model(request: CompletionRequest) -> str:
        calls.append(request)
        if len(calls) == call:
            raise KeyboardInterrupt
        return responder(request)

    monkeypatch.setattr(scripted_prefer, role, model)
    return calls


def stored(run_dir: Path) -> tuple[str, list[dict]]:  # type: ignore[type-arg]
    store = RunStore.open_existing(run_dir)
    try:
        return store.get("status"), store.preferences()
    finally:
        store.close()


def test_ctrl_c_during_a_model_call_keeps_the_verdicts_and_prefer_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = write_inputs_task(tmp_path / "task", models=SCRIPTED_MODELS)
    runs = tmp_path / "my-runs"
    interrupt_at(monkeypatch, "task", 5)  # in the third duel or later: 2 verdicts at least
    cli_runner = CliRunner()
    args = ["prefer", str(task), "--rounds", "6", "--run-id", "p", "--runs-dir", str(runs)]
    first = cli_runner.invoke(app, [*args, "--no-cache"], input="a\n" * 6)
    assert first.exit_code == 130, first.output
    assert isinstance(first.exception, SystemExit) and "Traceback" not in first.output
    assert (
        "interrupted: run p keeps every verdict given; continue it with\n"
        f"  promptascent prefer --resume p --runs-dir {runs}\n"
    ) in first.stderr
    status, verdicts = stored(runs / "p")
    assert status == "interrupted"
    assert len(verdicts) >= 2 and all(v["choice"] == "A" for v in verdicts)
    assert first.stdout.count("Which output is better?") == len(verdicts)

    calls = interrupt_at(monkeypatch, "task", 0)  # no more Ctrl-C
    resumed = cli_runner.invoke(
        app, ["prefer", "--resume", "p", "--runs-dir", str(runs)], input="b\n" * 6
    )
    assert resumed.exit_code == 0, resumed.output
    assert "status: all rounds recorded" in resumed.stdout
    assert resumed.stdout.count("Which output is better?") == 6 - len(verdicts)
    status, after = stored(runs / "p")
    assert status == "finished" and len(after) == 6
    assert after[: len(verdicts)] == verdicts  # the verdicts given before Ctrl-C, kept
    assert all(v["choice"] == "B" for v in after[len(verdicts) :])
    # The outputs shown before Ctrl-C came from the journal; the one cut off did not.
    assert len(calls) <= 2 * (6 - len(verdicts))


def test_ctrl_c_while_the_candidates_are_made_resumes_with_the_same_candidates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = write_inputs_task(tmp_path / "task", models=SCRIPTED_MODELS)
    cli_runner = CliRunner()
    baseline = interrupt_at(monkeypatch, "optimizer", 0)
    args = ["prefer", str(task), "--rounds", "3", "--no-cache"]
    whole = cli_runner.invoke(app, [*args, "--runs-dir", str(tmp_path / "a"), "--run-id", "p"])
    assert whole.exit_code == 0, whole.output

    runs = tmp_path / "b"
    first_calls = interrupt_at(monkeypatch, "optimizer", 2)
    first = cli_runner.invoke(app, [*args, "--runs-dir", str(runs), "--run-id", "p"])
    assert first.exit_code == 130, first.output
    assert f"promptascent prefer --resume p --runs-dir {runs}" in first.stderr
    assert stored(runs / "p") == ("interrupted", [])

    calls = interrupt_at(monkeypatch, "optimizer", 0)
    resumed = cli_runner.invoke(
        app, ["prefer", "--resume", "p", "--runs-dir", str(runs)], input="t\n" * 3
    )
    assert resumed.exit_code == 0, resumed.output
    assert "status: all rounds recorded" in resumed.stdout
    assert stored(runs / "p")[0] == "finished"
    ids = []
    for folder in (tmp_path / "a" / "p", runs / "p"):
        store = RunStore.open_existing(folder)
        try:
            ids.append([c["id"] for c in store.candidates()])
        finally:
            store.close()
    assert ids[0] == ids[1] and len(ids[0]) >= 2
    # The paraphrase made before Ctrl-C was not paid for again.
    assert len(first_calls) + len(calls) == len(baseline) + 1


def test_ctrl_c_before_the_run_is_stored_says_there_is_nothing_to_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(task: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("promptascent.preference.session.load_task_data", interrupted)
    task = write_inputs_task(tmp_path / "task", models=SCRIPTED_MODELS)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["prefer", str(task), "--run-id", "p", "--runs-dir", str(runs), "--no-cache"]
    )
    assert result.exit_code == 130
    assert "interrupted before run p was stored: nothing to resume" in result.stderr
    assert not (runs / "p").exists()


def test_resume_hint_names_a_run_outside_the_runs_folder_by_its_path(tmp_path: Path) -> None:
    from promptascent.cli.main import DEFAULT_RUNS_DIR, _resume_hint

    runs = tmp_path / "runs"
    assert _resume_hint("prefer", runs / "r1", runs) == (
        f"promptascent prefer --resume r1 --runs-dir {runs}"
    )
    assert _resume_hint("optimize", DEFAULT_RUNS_DIR / "r1", DEFAULT_RUNS_DIR) == (
        "promptascent optimize --resume r1"
    )
    elsewhere = tmp_path / "kept" / "r2"
    assert _resume_hint("prefer", elsewhere, runs) == f"promptascent prefer --resume {elsewhere}"
