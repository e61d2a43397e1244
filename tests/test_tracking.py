"""Experiment tracking (promptascent.tracking): runs on the scripted models, sent to a
local MLflow tracking store on SQLite and to OpenTelemetry's in-memory exporter, read
back with the tools' own clients."""

from __future__ import annotations

import json
import struct
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import scripted_cli
from scripted import (
    optimizer_model,
    pet_settings,
    stored_candidates,
    stored_events,
    task_model,
    task_responder,
    write_animal_task,
)

from promptascent import optimize
from promptascent.cli.main import main
from promptascent.errors import ConfigError
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest
from promptascent.runner import RunSettings
from promptascent.tracking import TRACKERS, check_trackers

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

APE = {"num_candidates": 4, "eval_examples": 6, "rounds": 1, "top_k": 2, "final_k": 2}
SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 4, eval_examples: 6, rounds: 1, top_k: 2, final_k: 2}
"""


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]) -> MlflowClient:
    """A local MLflow tracking store (SQLite, artifacts under tmp_path), with MLflow's
    telemetry off and no way off the machine."""
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is ./mlruns
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return MlflowClient()


def mlflow_runs(client: MlflowClient, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment}"
    return list(client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]))


def artifact(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> str:
    dest = tmp_path / "downloads" / run_id
    dest.mkdir(parents=True, exist_ok=True)
    return Path(client.download_artifacts(run_id, path, str(dest))).read_text(encoding="utf-8")


def assert_run_in_mlflow(
    client: MlflowClient, run: Any, run_dir: Path, tmp_path: Path, task_model: str
) -> None:
    """The MLflow run holds the promptascent run in `run_dir`: its parameters, each
    candidate's score on each split at the candidate's index, the seed and best
    prompts, the candidate table, the test scores with their intervals and the usage."""
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    data = run.data
    assert run.info.status == "FINISHED"
    assert data.tags["promptascent.run_id"] == result["run_id"] == run_dir.name
    assert data.tags["promptascent.status"] == result["status"]
    assert data.tags["promptascent.best_candidate"] == result["best_candidate"]
    assert data.params["task"] == "animals" and data.params["seed"] == "0"
    assert data.params["optimizer"] == "ape" and data.params["optimizer.num_candidates"] == "4"
    assert data.params["model.task"] == task_model
    stored = stored_candidates(run_dir)
    order = [c["id"] for c in stored]  # as they were proposed: the metric's steps
    splits = {split for c in stored for split in c["scores"]}
    assert {"dev-subset", "dev", "test"} <= splits
    for split in splits:
        history = client.get_metric_history(run.info.run_id, f"score.{split}")
        last = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
        expected = {
            order.index(c["id"]): c["scores"][split]["mean"] for c in stored if split in c["scores"]
        }
        assert last == expected
        assert len(history) == len(expected)  # one value per candidate
    subset = client.get_metric_history(run.info.run_id, "score.dev-subset")
    assert len(subset) == len(stored) >= 4 and len({m.value for m in subset}) > 1
    best_text = (run_dir / "best_prompt.txt").read_text(encoding="utf-8")
    assert artifact(client, run.info.run_id, "best_prompt.txt", tmp_path) == best_text
    assert result["best_prompt"]["instruction"] in best_text
    seed_text = artifact(client, run.info.run_id, "seed_prompt.txt", tmp_path)
    assert seed_text == "Which animal is it?\n\n{input}"
    table = json.loads(artifact(client, run.info.run_id, "candidates.json", tmp_path))
    assert [c["id"] for c in table] == order
    assert [c["operation"] for c in table] == [c["operation"] for c in stored]
    metrics = data.metrics
    test = result["test"]
    for key in ("mean", "ci_low", "ci_high"):
        assert metrics[f"test.best.{key}"] == pytest.approx(test["best"][key])
        assert metrics[f"test.seed.{key}"] == pytest.approx(test["seed"][key])
        assert metrics[f"test.difference.{key}"] == pytest.approx(test["difference"][key])
    for role, usage in result["usage"].items():
        for key in ("calls", "model_calls", "prompt_tokens", "dollars"):
            assert metrics[f"usage.{role}.{key}"] == pytest.approx(usage[key])
    assert metrics["usage.task.model_calls"] > 0


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Exit status and standard error of `promptascent ARGS`, run in this process."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["promptascent", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_optimize_track_mlflow_logs_the_run_to_the_tracking_store(
    tmp_path: Path,
    store: MlflowClient,
    no_network: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PA_CALL_DELAY", "0")
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    runs = tmp_path / "runs"
    code, err = run_cli(
        monkeypatch, capsys, "optimize", str(task), "--run-id", "r1", "-q",
        "--runs-dir", str(runs), "--cache-dir", str(tmp_path / "cache"), "--track", "mlflow",
    )  # fmt: skip
    assert code == 0, err
    assert err == ""  # MLflow's own logging stays quiet
    (run,) = mlflow_runs(store, "animals")
    assert_run_in_mlflow(store, run, runs / "r1", tmp_path, "scripted:scripted_cli:task")
    assert no_network == []


def test_compare_and_refine_track_every_run_they_make(
    tmp_path: Path,
    store: MlflowClient,
    no_network: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PA_CALL_DELAY", "0")
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    runs, cache = str(tmp_path / "runs"), str(tmp_path / "cache")
    code, err = run_cli(
        monkeypatch, capsys, "compare", str(task), "--optimizers", "ape,random", "--seeds", "0,1",
        "-q", "--runs-dir", runs, "--cache-dir", cache, "--track", "mlflow",
    )  # fmt: skip
    assert code == 0, err
    compared = mlflow_runs(store, "animals")
    assert sorted((r.data.params["optimizer"], r.data.params["seed"]) for r in compared) == [
        ("ape", "0"), ("ape", "1"), ("random", "0"), ("random", "1"),
    ]  # fmt: skip
    run_dirs = {p.parent.name: p.parent for p in Path(runs).rglob("result.json")}
    for run in compared:
        run_dir = run_dirs[run.info.run_name]
        if (run.data.params["optimizer"], run.data.params["seed"]) == ("ape", "0"):  # in full
            assert_run_in_mlflow(store, run, run_dir, tmp_path, "scripted:scripted_cli:task")
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        assert run.info.status == "FINISHED"
        assert run.data.tags["promptascent.best_candidate"] == result["best_candidate"]
    first = compared[0].info.run_name
    code, err = run_cli(
        monkeypatch, capsys, "refine", first, "--feedback", "Mention the animal.",
        "--run-id", "refined", "-q", "--runs-dir", str(run_dirs[first].parent),
        "--cache-dir", cache, "--track", "mlflow",
    )  # fmt: skip
    assert code == 0, err
    refined = [r for r in mlflow_runs(store, "animals") if r.info.run_name == "refined"]
    assert len(refined) == 1 and refined[0].info.status == "FINISHED"
    assert no_network == []


def test_the_python_api_tracks_with_run_settings(tmp_path: Path, store: MlflowClient) -> None:
    task = write_animal_task(tmp_path / "task")
    settings = animal_settings(tmp_path, "runs")
    settings.trackers = ("mlflow",)
    result = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    (run,) = mlflow_runs(store, "animals")
    assert_run_in_mlflow(store, run, result.run_dir, tmp_path, "scripted-task")


def animal_settings(tmp_path: Path, name: str, task: ScriptedLLM | None = None) -> RunSettings:
    """The scripted animal-task models, no caches (each run pays for its own calls)."""
    return RunSettings(
        runs_dir=tmp_path / name,
        cache_dir=None,
        backends={
            "task": task or task_model(),
            "optimizer": optimizer_model(),
            "judge": task_model(),
        },
    )


def outcome(run_dir: Path) -> dict[str, Any]:
    r = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    return {k: r[k] for k in ("status", "best_candidate", "selection_scores", "test", "candidates")}


@pytest.mark.parametrize(
    ("method", "fails_at"),
    [("create_run", 1), ("log_metric", 3), ("set_terminated", 1)],
    ids=["at-start", "mid-run", "at-the-end"],
)
def test_a_tracker_that_raises_leaves_the_run_as_it_was_and_warns_once(
    tmp_path: Path, store: MlflowClient, monkeypatch: pytest.MonkeyPatch, method: str, fails_at: int
) -> None:
    task = write_animal_task(tmp_path / "task")
    untracked = optimize(
        task, optimizer="ape", options=APE, settings=animal_settings(tmp_path, "a"), progress=False
    )
    calls = []
    real = getattr(MlflowClient, method)

    def flaky(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        if len(calls) >= fails_at:
            raise RuntimeError("tracking server down")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, method, flaky)
    settings = animal_settings(tmp_path, "b")
    settings.trackers = ("mlflow",)
    tracked = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    assert tracked.status == "finished" and tracked.best.prompt.instruction == (
        untracked.best.prompt.instruction
    )
    assert outcome(tracked.run_dir) == outcome(untracked.run_dir)
    (warning,) = stored_events(tracked.run_dir, "TrackerFailed")
    assert warning["tracker"] == "mlflow"
    assert warning["error"] == "RuntimeError: tracking server down"
    assert len(calls) == fails_at  # no call to a tracker after it failed
    stored = stored_events(tracked.run_dir, "RunFinished")
    assert len(stored) == 1 and stored[0]["status"] == "finished"


def test_a_tracking_server_that_never_answers_holds_up_neither_the_run_nor_its_end(
    tmp_path: Path, store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow's third log_metric never returns (a server that stopped answering): the
    run goes on as without tracking (its events are not held behind the tracker), waits
    FINISH_WAIT_S at the end, then drops the tracker with one warning. The calls before
    the hang reached MLflow."""
    from promptascent.tracking import sink

    task = write_animal_task(tmp_path / "task")
    untracked = optimize(
        task, optimizer="ape", options=APE, settings=animal_settings(tmp_path, "a"), progress=False
    )
    release = threading.Event()
    logged: list[float] = []
    real = MlflowClient.log_metric

    def hangs(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
        if len(logged) == 2:
            release.wait(60)  # the test releases it once the run has ended
            raise RuntimeError("released by the test")
        logged.append(args[2])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_metric", hangs)
    monkeypatch.setattr(sink, "FINISH_WAIT_S", 0.5)
    settings = animal_settings(tmp_path, "b")
    settings.trackers = ("mlflow",)
    try:
        tracked = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
        assert not release.is_set()
    finally:
        release.set()
    assert tracked.status == "finished"
    assert outcome(tracked.run_dir) == outcome(untracked.run_dir)
    (warning,) = stored_events(tracked.run_dir, "TrackerFailed")
    assert warning["tracker"] == "mlflow"
    assert warning["error"].startswith("did not finish within 0.5 s")
    (run,) = mlflow_runs(store, "animals")
    history = store.get_metric_history(run.info.run_id, "score.dev-subset")
    assert [m.value for m in history] == logged[: len(history)] and len(history) == 2


def test_the_cli_warns_once_on_stderr_when_a_tracker_fails(
    tmp_path: Path,
    store: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def down(self: MlflowClient, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracking server down")

    monkeypatch.setattr(MlflowClient, "log_metric", down)
    monkeypatch.setenv("PA_CALL_DELAY", "0")
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    code, err = run_cli(
        monkeypatch, capsys, "optimize", str(task), "-q", "--no-cache",
        "--runs-dir", str(tmp_path / "runs"), "--track", "mlflow",
    )  # fmt: skip
    assert code == 0, err
    assert err.splitlines() == [
        "warning: tracker mlflow failed and is off for this run: RuntimeError: tracking server down"
    ]


def test_an_interrupted_run_is_killed_in_mlflow_and_its_resume_is_a_new_tagged_run(
    tmp_path: Path,
    store: MlflowClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PA_CALL_DELAY", "0")
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    runs = tmp_path / "runs"
    calls: list[CompletionRequest] = []

    def interrupting(request: CompletionRequest) -> str:
        calls.append(request)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return task_responder(request)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scripted_cli, "task", interrupting)
        code, err = run_cli(
            monkeypatch, capsys, "optimize", str(task), "--run-id", "r1", "-q", "--no-cache",
            "--runs-dir", str(runs), "--track", "mlflow",
        )  # fmt: skip
    assert code == 130, err
    (killed,) = mlflow_runs(store, "animals")
    assert killed.info.status == "KILLED"
    assert killed.data.tags["promptascent.status"] == "interrupted"
    assert killed.data.tags["promptascent.resumed"] == "False"
    # The resume is tracked without --track: the run keeps its trackers.
    code, err = run_cli(
        monkeypatch, capsys, "optimize", "--resume", "r1", "-q", "--runs-dir", str(runs)
    )
    assert code == 0, err
    first, resumed = mlflow_runs(store, "animals")
    assert first.info.run_id == killed.info.run_id
    assert resumed.data.tags["promptascent.run_id"] == "r1"
    assert resumed.data.tags["promptascent.resumed"] == "True"
    # The search replays from the run's journal: the new MLflow run has it all.
    assert_run_in_mlflow(store, resumed, runs / "r1", tmp_path, "scripted:scripted_cli:task")


def test_a_run_that_fails_is_failed_in_mlflow(tmp_path: Path, store: MlflowClient) -> None:
    calls = []

    def broken(request: CompletionRequest) -> str:
        calls.append(request)
        if len(calls) == 10:
            raise RuntimeError("a bug")
        return task_responder(request)

    settings = animal_settings(tmp_path, "runs", task=ScriptedLLM(broken))
    settings.trackers = ("mlflow",)
    with pytest.raises(RuntimeError, match="a bug"):
        optimize(
            write_animal_task(tmp_path / "task"),
            optimizer="ape",
            options={**APE, "eval_examples": 2},
            settings=settings,
            progress=False,
        )
    (run,) = mlflow_runs(store, "animals")
    assert run.info.status == "FAILED" and run.data.tags["promptascent.status"] == "failed"


def test_no_key_reaches_mlflow(
    tmp_path: Path, store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PA_TRACKING_KEY", "sk-tracking-secret-4242")
    (tmp_path / "key.txt").write_text("sk-file-secret-4343\n")
    judge = (
        "models:\n"
        "  judge: {backend: openai, model: gpt-4o-mini, api_key_env: PA_TRACKING_KEY,\n"
        "          base_url: 'http://127.0.0.1:9/v1'}\n"
        "  optimizer: {backend: openai, model: gpt-4o-mini, api_key_file: "
        f"'{tmp_path / 'key.txt'}'}}\n"
    )
    task = write_animal_task(tmp_path / "task", extra=judge)
    settings = pet_settings(tmp_path)
    del settings.backends["judge"]  # the judge is the task file's (never called)
    settings.trackers = ("mlflow",)
    result = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    (run,) = mlflow_runs(store, "animals")
    assert run.data.params["model.judge"] == "openai:gpt-4o-mini@http://127.0.0.1:9/v1"
    everything = [json.dumps([run.data.params, run.data.tags, sorted(run.data.metrics)])]
    for item in store.list_artifacts(run.info.run_id):
        everything.append(artifact(store, run.info.run_id, item.path, tmp_path))
    text = "\n".join(everything)
    assert result.best.prompt.instruction in text  # the artifacts were read
    for secret in ("sk-tracking-secret-4242", "sk-file-secret-4343", "key.txt"):
        assert secret not in text


def test_an_unknown_tracker_or_a_missing_library_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
    code, err = run_cli(monkeypatch, capsys, "optimize", str(task), "--track", "neptune")
    assert code == 2
    assert err.strip() == "error: --track: 'neptune' is not one of mlflow, otel, wandb"
    assert not (tmp_path / "runs").exists()
    monkeypatch.setitem(TRACKERS, "mlflow", ("no_such_tracking_module", "mlflow"))
    with pytest.raises(ConfigError, match=r"pip install 'promptascent\[mlflow\]'"):
        check_trackers(["mlflow"])


def test_mlflow_telemetry_is_off_unless_the_user_chose(
    store: MlflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from promptascent.tracking.mlflow_tracker import MlflowTracker

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    MlflowTracker()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    MlflowTracker()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"


# OpenTelemetry: spans read back from the SDK's in-memory exporter.


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An SDK tracer provider with an in-memory exporter, as an application that set
    up OpenTelemetry itself would have (not installed globally: a test's own)."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return exporter


def model_spans(finished: Any) -> tuple[Any, list[Any]]:
    (run,) = [s for s in finished if s.name == "promptascent.run"]
    calls = [s for s in finished if s.name == "promptascent.model_call"]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in calls)
    assert all(s.context.trace_id == run.context.trace_id for s in calls)
    return run, calls


def test_track_otel_gives_one_span_per_model_call_under_the_run_span(
    tmp_path: Path, spans: Any
) -> None:
    task = write_animal_task(tmp_path / "task")
    settings = animal_settings(tmp_path, "runs")
    settings.cache_dir = tmp_path / "cache"
    settings.trackers = ("otel",)
    cold = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    run, calls = model_spans(spans.get_finished_spans())
    assert run.attributes["promptascent.run_id"] == cold.run_id
    assert run.attributes["promptascent.status"] == "finished"
    assert run.attributes["promptascent.optimizer"] == "ape"
    # one span per logical call of each role, with its tokens and whether cached
    for role, usage in cold.usage.items():
        mine = [s for s in calls if s.attributes["promptascent.role"] == role]
        assert len(mine) == usage["calls"]
        assert sum(s.attributes["promptascent.cached"] for s in mine) == usage["cache_hits"]
        assert (
            sum(s.attributes["promptascent.prompt_tokens"] for s in mine)
            == (usage["prompt_tokens"])
        )
        assert (
            sum(s.attributes["promptascent.completion_tokens"] for s in mine)
            == (usage["completion_tokens"])
        )
    models = {s.attributes["promptascent.role"]: s.attributes["promptascent.model"] for s in calls}
    assert models == {"task": "scripted-task", "optimizer": "scripted-optimizer"}
    assert cold.usage["task"]["model_calls"] > 0 and len(calls) >= cold.usage["task"]["calls"]
    for s in calls:
        assert s.start_time <= s.end_time and run.start_time <= s.start_time <= run.end_time
        assert s.attributes["promptascent.seconds"] == pytest.approx(
            (s.end_time - s.start_time) / 1e9, abs=1e-6
        )
    # a warm rerun: every call answered by the cache, and so marked
    spans.clear()
    warm = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    _, calls = model_spans(spans.get_finished_spans())
    assert warm.usage["task"]["model_calls"] == 0 and calls
    assert all(s.attributes["promptascent.cached"] for s in calls)


def test_a_failed_model_call_is_an_error_span(tmp_path: Path, spans: Any) -> None:
    from opentelemetry.trace import StatusCode

    from promptascent.errors import ModelServerError

    failures = []

    def flaky(request: CompletionRequest) -> str:
        if request.messages[-1].content.endswith("cow") and len(failures) < 3:
            failures.append(request)
            raise ModelServerError("the server said 500")
        return task_responder(request)

    settings = animal_settings(tmp_path, "runs", task=ScriptedLLM(flaky))
    settings.trackers = ("otel",)
    task = write_animal_task(tmp_path / "task")
    result = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    _, calls = model_spans(spans.get_finished_spans())
    failed = [s for s in calls if s.status.status_code == StatusCode.ERROR]
    assert len(failed) == result.usage["task"]["errors"] == 3 and result.status == "finished"
    assert all(
        s.attributes["promptascent.error"] == "ModelServerError: the server said 500"
        for s in failed
    )
    assert all("promptascent.error" not in s.attributes for s in calls if s not in failed)


class Collector:
    """An OTLP/HTTP trace collector on 127.0.0.1: the spans of every request it got."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        spans = self.spans = []
        self.services: set[str] = set()
        services = self.services

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource in request.resource_spans:
                    for attr in resource.resource.attributes:
                        if attr.key == "service.name":
                            services.add(attr.value.string_value)
                    for scope in resource.scope_spans:
                        spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_without_an_sdk_provider_spans_go_where_the_otel_environment_variables_say(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_network: list[Any],
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    collector = Collector()
    try:
        monkeypatch.setenv("PA_CALL_DELAY", "0")
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)  # default: otlp
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", collector.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "pets-at-work")
        task = write_animal_task(tmp_path / "task", extra=SCRIPTED_MODELS)
        args = ["optimize", str(task), "-q", "--runs-dir", str(tmp_path / "runs")]
        code, err = run_cli(monkeypatch, capsys, *args, "--track", "otel", "--run-id", "r1")
        assert code == 0 and err == "", err
    finally:
        collector.close()
    names = [s.name for s in collector.spans]
    assert names.count("promptascent.run") == 1 and names.count("promptascent.model_call") > 10
    assert collector.services == {"pets-at-work"}
    result = json.loads((tmp_path / "runs" / "r1" / "result.json").read_text())
    assert names.count("promptascent.model_call") == sum(
        u["calls"] for u in result["usage"].values()
    )
    assert no_network == []
    # an exporter that is not installed: a one-line error before the run starts
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    code, err = run_cli(monkeypatch, capsys, *args, "--track", "otel", "--run-id", "never")
    assert code == 2 and err.startswith("error: OTEL_TRACES_EXPORTER: no OpenTelemetry exporter")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "runs" / "never").exists()


# Weights & Biases, offline: the run file read back record by record.


def wandb_records(folder: Path) -> list[Any]:
    """The records of the one offline run under `folder` (WANDB_DIR): its run-ID.wandb
    file is a header (":W&B", magic, version: 7 bytes) then LevelDB log records in
    32 KiB blocks (checksum, length, type: 7 bytes, then the data; type 1 is a whole
    record, 2-4 its first, middle and last parts), each a wandb_internal Record."""
    from wandb.proto import wandb_internal_pb2

    (path,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, parts, records = 32768, 7, [], []
    while pos + 7 <= len(data):
        left = block - pos % block
        _checksum, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # the block's zero padding
            pos += left
            continue
        parts.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (1, 4):
            records.append(wandb_internal_pb2.Record.FromString(b"".join(parts)))
            parts = []
    return records


def items(updates: Any) -> dict[str, Any]:
    return {u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in updates}


def test_track_wandb_offline_writes_params_scores_summary_and_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: list[Any]
) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_DIR", "WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    for var in ("WANDB_API_KEY", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    task = write_animal_task(tmp_path / "task")
    settings = animal_settings(tmp_path, "runs")
    settings.trackers = ("wandb",)
    result = optimize(task, optimizer="ape", options=APE, settings=settings, progress=False)
    records = wandb_records(tmp_path / "WANDB_DIR")
    by_kind: dict[str, list[Any]] = {}
    for r in records:
        by_kind.setdefault(r.WhichOneof("record_type"), []).append(r)
    (run,) = by_kind["run"]
    assert run.run.display_name == result.run_id and run.run.project == "animals"
    config = items(run.run.config.update)
    for r in by_kind.get("config", []):
        config.update(items(r.config.update))
    assert config["promptascent.run_id"] == result.run_id
    assert config["optimizer"] == "ape" and config["optimizer.num_candidates"] == "4"
    assert config["model.task"] == "scripted-task" and config["seed"] == "0"
    # one score per candidate and split, against the candidate's index
    stored = stored_candidates(result.run_dir)
    order = [c["id"] for c in stored]
    logged: dict[str, dict[int, float]] = {}
    for r in by_kind["history"]:
        row = items(r.history.item)
        for key, value in row.items():
            if key.startswith("score/"):
                logged.setdefault(key.removeprefix("score/"), {})[row["candidate"]] = value
    expected: dict[str, dict[int, float]] = {}
    for c in stored:
        for split, score in c["scores"].items():
            expected.setdefault(split, {})[order.index(c["id"])] = score["mean"]
    assert logged == expected and len(logged["dev-subset"]) == len(stored)
    assert len({v for scores in logged.values() for v in scores.values()}) > 1
    summary: dict[str, Any] = {}
    for r in by_kind["summary"]:
        summary.update(items(r.summary.update))
    final = json.loads((result.run_dir / "result.json").read_text(encoding="utf-8"))
    assert summary["promptascent.status"] == "finished"
    assert summary["promptascent.best_candidate"] == result.best.id
    for key in ("mean", "ci_low", "ci_high"):
        assert summary[f"test/best/{key}"] == pytest.approx(final["test"]["best"][key])
        assert summary[f"test/difference/{key}"] == pytest.approx(final["test"]["difference"][key])
    for role, usage in final["usage"].items():
        assert summary[f"usage/{role}/model_calls"] == usage["model_calls"]
        assert summary[f"usage/{role}/dollars"] == pytest.approx(usage["dollars"])
    (artifact_record,) = by_kind["artifact"]
    files = {
        m.path: Path(m.local_path).read_text(encoding="utf-8")
        for m in artifact_record.artifact.manifest.contents
    }
    assert files["best_prompt.txt"] == (result.run_dir / "best_prompt.txt").read_text()
    assert files["seed_prompt.txt"] == "Which animal is it?\n\n{input}"
    assert [c["id"] for c in json.loads(files["candidates.json"])] == order
    assert all(str(tmp_path) in m.local_path for m in artifact_record.artifact.manifest.contents)
    (exit_record,) = by_kind["exit"]
    assert exit_record.exit.exit_code == 0
    assert no_network == []
