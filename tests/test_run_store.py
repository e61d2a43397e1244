"""Tests for the run store (promptascent.store.run_store) and atomic writes (store.files)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptascent.errors import ConfigError
from promptascent.evaluation.result import EvaluationResult, ExampleResult
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.search.pool import Candidate
from promptascent.store.files import write_atomic
from promptascent.store.run_store import FILENAME, SCHEMA_VERSION, RunStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    s = RunStore(tmp_path / "run")
    yield s
    s.close()


SEED = Candidate(Prompt("Q: {input}"))
CHILD = Candidate(
    Prompt("Answer: {input}", system="sys", demos=(Demo("a", "b"),)),
    parents=(SEED.id,),
    operation="induce",
    step=1,
)
GRANDCHILD = Candidate(
    Prompt("Answer briefly: {input}"), parents=(CHILD.id, SEED.id), operation="resample", step=2
)


def result(prompt_id: str, *rows: ExampleResult) -> EvaluationResult:
    return EvaluationResult(prompt_id, tuple(rows))


# ----------------------------------------------------------------------------- key-value


def test_put_get_json_values(store: RunStore) -> None:
    store.put("config", {"task": {"name": "x"}, "limits": [1, 2.5, None], "ok": True})
    store.put("status", "running")
    assert store.get("config") == {"task": {"name": "x"}, "limits": [1, 2.5, None], "ok": True}
    assert store.get("status") == "running"
    store.put("status", "finished")
    assert store.get("status") == "finished"
    assert store.get("missing") is None
    assert store.get("missing", "fallback") == "fallback"


def test_new_store_records_its_schema_version(store: RunStore) -> None:
    assert store.path == store.run_dir / FILENAME
    assert store.path.is_file()
    assert store.get("schema_version") == SCHEMA_VERSION


# ----------------------------------------------------------------------------- candidates


def test_candidates_come_back_in_insertion_order_with_lineage(store: RunStore) -> None:
    for c in (GRANDCHILD, SEED, CHILD):
        store.add_candidate(c.record())
    got = store.candidates()
    assert [c["id"] for c in got] == [GRANDCHILD.id, SEED.id, CHILD.id]
    assert got[2] == {
        "id": CHILD.id,
        "prompt": CHILD.prompt.to_dict(),
        "parents": [SEED.id],
        "operation": "induce",
        "step": 1,
        "note": "",
        "scores": {},
    }
    assert got[0]["parents"] == [CHILD.id, SEED.id]
    assert (got[0]["operation"], got[0]["step"]) == ("resample", 2)
    assert (got[1]["parents"], got[1]["operation"], got[1]["step"]) == ([], "seed", 0)


def test_adding_a_candidate_twice_keeps_the_first(store: RunStore) -> None:
    store.add_candidate(SEED.record())
    store.add_candidate(Candidate(SEED.prompt, parents=("x",), operation="again", step=9).record())
    store.add_candidate(CHILD.record())
    got = store.candidates()
    assert [c["id"] for c in got] == [SEED.id, CHILD.id]
    assert (got[0]["operation"], got[0]["step"]) == ("seed", 0)


def test_prompt_by_candidate_id(store: RunStore) -> None:
    store.add_candidate(CHILD.record())
    assert Prompt.from_dict(store.prompt(CHILD.id)) == CHILD.prompt
    assert Prompt.from_dict(store.prompt(CHILD.id)).id == CHILD.id
    with pytest.raises(ConfigError, match="no candidate 'nope'"):
        store.prompt("nope")


# ----------------------------------------------------------------------------- evaluations


def test_add_evaluation_stores_rows_and_scores(store: RunStore) -> None:
    store.add_candidate(SEED.record())
    ev = result(
        SEED.id,
        ExampleResult("e2", "dog", 1.0, prediction="dog"),
        ExampleResult("e1", "hmm", 0.0, parsed=False, finish_reason="length"),
        ExampleResult("e3", "", None, error="timeout"),
    )
    store.add_evaluation(SEED.id, "dev", ev.record())
    assert store.evaluations(SEED.id, "dev") == [
        {
            "example_id": "e1",
            "output": "hmm",
            "score": 0.0,
            "parsed": 0,
            "prediction": None,
            "error": None,
            "finish_reason": "length",
            "loss": None,
            "gold_prob": None,
        },
        {
            "example_id": "e2",
            "output": "dog",
            "score": 1.0,
            "parsed": 1,
            "prediction": "dog",
            "error": None,
            "finish_reason": "stop",
            "loss": None,
            "gold_prob": None,
        },
        {
            "example_id": "e3",
            "output": "",
            "score": None,
            "parsed": 1,
            "prediction": None,
            "error": "timeout",
            "finish_reason": "stop",
            "loss": None,
            "gold_prob": None,
        },
    ]
    assert store.evaluations(SEED.id, "test") == []
    summary = ev.summary()
    assert store.candidates()[0]["scores"] == {
        "dev": {
            "mean": 0.5,
            "ci_low": summary["ci_low"],
            "ci_high": summary["ci_high"],
            "n": 2,
            "unparsed": 1,
            "errors": 1,
            "mean_loss": None,
        }
    }


def test_scores_are_kept_per_split_and_replaced_on_rewrite(store: RunStore) -> None:
    store.add_candidate(SEED.record())
    store.add_evaluation(
        SEED.id, "dev-subset", result(SEED.id, ExampleResult("a", "x", 0.0)).record()
    )
    store.add_evaluation(SEED.id, "dev", result(SEED.id, ExampleResult("a", "x", 0.0)).record())
    store.add_evaluation(SEED.id, "dev", result(SEED.id, ExampleResult("a", "y", 1.0)).record())
    scores = store.candidates()[0]["scores"]
    assert sorted(scores) == ["dev", "dev-subset"]
    assert (scores["dev"]["mean"], scores["dev-subset"]["mean"]) == (1.0, 0.0)
    assert [r["output"] for r in store.evaluations(SEED.id, "dev")] == ["y"]


def test_nan_mean_is_stored_as_null(store: RunStore) -> None:
    store.add_candidate(SEED.record())
    ev = result(SEED.id, ExampleResult("a", "", None, error="boom"))
    assert ev.mean != ev.mean  # NaN: nothing was scored
    store.add_evaluation(SEED.id, "dev", ev.record())
    assert store.candidates()[0]["scores"]["dev"] == {
        "mean": None,
        "ci_low": None,
        "ci_high": None,
        "n": 0,
        "unparsed": 0,
        "errors": 1,
        "mean_loss": None,
    }


def test_failed_evaluation_write_leaves_nothing(store: RunStore) -> None:
    store.add_candidate(SEED.record())
    bad = result(
        SEED.id,
        ExampleResult("a", "x", 1.0),
        ExampleResult("b", None, 1.0),  # type: ignore[arg-type]  # output NOT NULL
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.add_evaluation(SEED.id, "dev", bad.record())
    assert store.evaluations(SEED.id, "dev") == []
    assert store.candidates()[0]["scores"] == {}


# ----------------------------------------------------------------------------- events, usage


def test_events_roundtrip_in_order(store: RunStore) -> None:
    store.add_event(10.5, "RunStarted", {"run_id": "r1", "optimizer": "ape"})
    store.add_event(11.0, "PhaseStarted", {"phase": "search", "total": None})
    assert store.events() == [
        {"seq": 1, "ts": 10.5, "kind": "RunStarted", "run_id": "r1", "optimizer": "ape"},
        {"seq": 2, "ts": 11.0, "kind": "PhaseStarted", "phase": "search", "total": None},
    ]


def test_usage_roundtrip(store: RunStore) -> None:
    assert store.usage() == {}
    store.set_usage({"task": {"calls": 3, "dollars": 0.25}, "optimizer": {"calls": 1}})
    store.set_usage({"task": {"calls": 5, "dollars": 0.5}})
    assert store.usage() == {"task": {"calls": 5, "dollars": 0.5}, "optimizer": {"calls": 1}}


# ----------------------------------------------------------------------------- opening


def test_open_existing_on_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"not a run folder \\(no {FILENAME}\\)"):
        RunStore.open_existing(tmp_path)
    assert not (tmp_path / FILENAME).exists()


def test_a_second_store_on_the_same_folder_sees_the_data(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "run")
    first.put("status", "finished")
    first.add_candidate(SEED.record())
    first.add_candidate(CHILD.record())
    first.add_evaluation(SEED.id, "dev", result(SEED.id, ExampleResult("a", "x", 1.0)).record())
    first.add_event(1.0, "RunFinished", {"status": "finished"})
    first.set_usage({"task": {"calls": 1}})
    first.close()

    again = RunStore.open_existing(tmp_path / "run")
    try:
        assert again.get("status") == "finished"
        assert [c["id"] for c in again.candidates()] == [SEED.id, CHILD.id]
        assert again.candidates()[0]["scores"]["dev"]["mean"] == 1.0
        assert [r["example_id"] for r in again.evaluations(SEED.id, "dev")] == ["a"]
        assert again.events() == [
            {"seq": 1, "ts": 1.0, "kind": "RunFinished", "status": "finished"}
        ]
        assert again.usage() == {"task": {"calls": 1}}
        again.add_candidate(GRANDCHILD.record())
        assert [c["id"] for c in again.candidates()] == [SEED.id, CHILD.id, GRANDCHILD.id]
    finally:
        again.close()


def test_two_open_stores_see_each_others_writes(tmp_path: Path) -> None:
    a = RunStore(tmp_path / "run")
    b = RunStore(tmp_path / "run")
    try:
        a.put("status", "running")
        assert b.get("status") == "running"
        b.add_candidate(SEED.record())
        assert [c["id"] for c in a.candidates()] == [SEED.id]
    finally:
        a.close()
        b.close()


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    s = RunStore(tmp_path / "run")
    s.put("schema_version", SCHEMA_VERSION + 1)
    s.close()
    with pytest.raises(ConfigError, match=f"schema {SCHEMA_VERSION + 1} is newer"):
        RunStore.open_existing(tmp_path / "run")


# ----------------------------------------------------------------------------- write_atomic


def test_write_atomic_writes_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.txt"
    write_atomic(path, "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert os.listdir(path.parent) == ["out.txt"]


def test_write_atomic_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")
    write_atomic(path, "new")
    assert path.read_text(encoding="utf-8") == "new"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_write_atomic_failure_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new")
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_write_atomic_failure_while_writing_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old", encoding="utf-8")

    def fail(fd: int) -> None:
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="fsync failed"):
        write_atomic(path, "new")
    assert path.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_a_candidate_note_is_kept(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.add_candidate(Candidate(CHILD.prompt, (SEED.id,), "edit", 1, note="too vague").record())
    assert store.candidates()[0]["note"] == "too vague"
    store.close()


def test_a_version_1_store_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    run = tmp_path / "old"
    run.mkdir()
    with sqlite3.connect(run / "run.sqlite") as conn:
        conn.executescript(
            "CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO run VALUES ('schema_version', '1');"
            "CREATE TABLE candidates (id TEXT PRIMARY KEY, prompt TEXT NOT NULL,"
            " parents TEXT NOT NULL, operation TEXT NOT NULL, step INTEGER NOT NULL,"
            " seq INTEGER NOT NULL);"
        )
    store = RunStore.open_existing(run)
    store.add_candidate(Candidate(CHILD.prompt, (), "seed", 0).record())
    assert store.candidates()[0]["note"] == ""
    assert store.get("schema_version") == SCHEMA_VERSION and store.preferences() == []
    store.close()


def test_a_version_3_store_gains_the_likelihood_columns(tmp_path: Path) -> None:
    import sqlite3

    run = tmp_path / "v3"
    run.mkdir()
    with sqlite3.connect(run / "run.sqlite") as conn:
        conn.executescript(
            "CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
            "INSERT INTO run VALUES ('schema_version', '3');"
            "CREATE TABLE evaluations (candidate_id TEXT NOT NULL, split TEXT NOT NULL,"
            " example_id TEXT NOT NULL, output TEXT NOT NULL, score REAL,"
            " parsed INTEGER NOT NULL, prediction TEXT, error TEXT,"
            " finish_reason TEXT NOT NULL, PRIMARY KEY (candidate_id, split, example_id));"
            "CREATE TABLE scores (candidate_id TEXT NOT NULL, split TEXT NOT NULL, mean REAL,"
            " ci_low REAL, ci_high REAL, n INTEGER NOT NULL, unparsed INTEGER NOT NULL,"
            " errors INTEGER NOT NULL, PRIMARY KEY (candidate_id, split));"
        )
    store = RunStore.open_existing(run)
    store.add_candidate(SEED.record())
    store.add_evaluation(
        SEED.id,
        "dev",
        result(SEED.id, ExampleResult("a", "x", 1.0, loss=0.25, gold_prob=0.78)).record(),
    )
    assert store.evaluations(SEED.id, "dev")[0]["loss"] == 0.25
    assert store.candidates()[0]["scores"]["dev"]["mean_loss"] == 0.25
    assert store.get("schema_version") == SCHEMA_VERSION
    store.close()
