"""What is trusted: the task file the user passes and the code it names. Data folders,
the folder a command runs in and the scripted test double are not code a user runs.

Each module these tests plant writes a marker file when it is imported, so "not
imported" is checked as a file that does not exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from scripted import write_animal_task

from promptascent.config.task import TEST_BACKENDS_ENV, ModelSpec, load_task
from promptascent.errors import ConfigError
from promptascent.metrics.code import CodeMetric
from promptascent.runner import Runner, RunSettings, plan

TESTS = Path(__file__).resolve().parent
SCRIPTED_MODELS = (
    "models:\n"
    "  task: {backend: scripted, model: 'scripted_cli:task'}\n"
    "  optimizer: {backend: scripted, model: 'scripted_cli:optimizer'}\n"
    "optimizer: {name: ape, num_candidates: 3, eval_examples: 4, rounds: 0}\n"
)


def plant_module(folder: Path, name: str, marker: Path) -> Path:
    """A module `name`.py in `folder` that writes `marker` when imported and has a
    metric `score` (1 when the target is in the output)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            Path({str(marker)!r}).write_text("imported")


            def score(output, example):
                return float(example.target in output)
            """
        ),
        encoding="utf-8",
    )
    return path


def cli(
    *args: str, cwd: Path, pythonpath: list[Path] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m promptascent ARGS` in `cwd`, the test backends allowed, PYTHONPATH
    exactly `pythonpath` (the tests folder, for the scripted models)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({"COLUMNS": "200", "PA_CALL_DELAY": "0", TEST_BACKENDS_ENV: "1"})
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


# --------------------------------------------------------------------------- code metrics


@pytest.mark.parametrize("form", ["file", "module"])
def test_dry_run_imports_no_metric_code_and_the_run_imports_it_when_it_starts(
    tmp_path: Path, form: str
) -> None:
    marker = tmp_path / "imported.txt"
    task_dir = tmp_path / "task"
    plant_module(task_dir if form == "file" else tmp_path / "lib", "side_effect", marker)
    spec = "./side_effect.py:score" if form == "file" else "side_effect:score"
    task = write_animal_task(task_dir, extra=SCRIPTED_MODELS)
    task.write_text(task.read_text().replace("metric: choice_accuracy", f"metric: {spec!r}"))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    path = [TESTS, tmp_path / "lib"]

    dry = cli("optimize", str(task), "--dry-run", cwd=elsewhere, pythonpath=path)
    assert dry.returncode == 0, dry.stderr
    assert "nothing was spent" in dry.stdout
    assert not marker.exists(), "--dry-run imported the metric's module"

    run = cli("optimize", str(task), "-q", "--run-id", "r", cwd=elsewhere, pythonpath=path)
    assert run.returncode == 0, run.stderr
    assert marker.read_text() == "imported"
    result = json.loads((elsewhere / "runs" / "r" / "result.json").read_text())
    assert result["test"]["best"]["mean"] == 1.0  # the key prompt, scored by the file's metric


def test_planning_checks_a_code_metric_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    plant_module(tmp_path, "side_effect", marker)
    metric = CodeMetric("./side_effect.py:score", tmp_path)
    assert not metric.loaded and not marker.exists()
    with pytest.raises(ConfigError, match=r"nowhere\.py: file not found"):
        CodeMetric("./nowhere.py:score", tmp_path)
    with pytest.raises(ConfigError, match=r"is not a \.py file"):
        CodeMetric("./side_effect.txt:score", tmp_path)
    with pytest.raises(ConfigError, match=r"expected '\./file\.py:function'"):
        CodeMetric("./side_effect.py:", tmp_path)
    with pytest.raises(ConfigError, match="no installed module 'no_such_module_xyz'"):
        CodeMetric("no_such_module_xyz.sub:score", tmp_path)
    assert not marker.exists()


def test_a_code_metric_that_cannot_load_stops_the_run_before_it_is_recorded(
    tmp_path: Path,
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "broken.py").write_text("raise RuntimeError('no\\nway')\n")
    task = write_animal_task(tmp_path / "t", extra=SCRIPTED_MODELS)
    task.write_text(task.read_text().replace("choice_accuracy", "'./broken.py:score'"))
    p = plan(load_task(task))  # planning imports nothing, so it cannot fail here
    runner = Runner(p, RunSettings(runs_dir=tmp_path / "runs", cache_dir=None), run_id="r")
    with pytest.raises(ConfigError) as caught:
        runner.run()
    message = str(caught.value)
    assert "broken.py" in message and "RuntimeError: no way" in message
    assert "\n" not in message
    assert not (tmp_path / "runs" / "r").exists()


def test_a_code_metric_is_not_imported_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "imported.txt"
    plant_module(tmp_path, "cwd_metric_mod", marker)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend("")  # as `python -c` or an interactive session has it
    with pytest.raises(ConfigError, match=r"name its file, e\.g\. metric: \./cwd_metric_mod\.py"):
        CodeMetric("cwd_metric_mod:score", tmp_path)
    assert not marker.exists()
    # Named as a file, the same module is the user's explicit choice.
    assert CodeMetric("./cwd_metric_mod.py:score", tmp_path).load().name.endswith(":score")
    assert marker.exists()


# --------------------------------------------------------------------------- data folders


def data_folder(root: Path, metric: object, marker: Path) -> Path:
    """A data folder whose task.json names `metric`, with a module `evil_metric` beside
    it and in the folder above (the current folder of the command)."""
    folder = root / "data"
    write_animal_task(folder)
    (folder / "task.yaml").unlink()
    (folder / "task.json").write_text(
        json.dumps({"seed_prompt": "Which animal?", "metric": metric})
    )
    plant_module(folder, "evil_metric", marker)
    plant_module(root, "evil_metric", marker)
    task = root / "task.yaml"
    task.write_text("name: animals\ndata: {folder: data}\n")
    return task


@pytest.mark.parametrize("metric", ["evil_metric:score", {"name": "evil_metric:score"}])
def test_a_data_folder_naming_code_is_refused_and_nothing_is_imported(
    tmp_path: Path, metric: object
) -> None:
    marker = tmp_path / "imported.txt"
    task = data_folder(tmp_path, metric, marker)
    proc = cli("optimize", "task.yaml", "--dry-run", cwd=tmp_path, pythonpath=[tmp_path / "data"])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    error = proc.stderr.strip()
    assert error.startswith("error: ") and len(error.splitlines()) == 1
    assert "task.json" in error and "code metrics belong in the task file" in error
    assert not marker.exists()
    with pytest.raises(ConfigError, match="a data folder may name only a built-in metric"):
        plan(load_task(task))


def test_a_data_folder_may_name_a_builtin_metric_with_options(tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    task = data_folder(tmp_path, {"name": "regex", "pattern": "(cat|dog)"}, marker)
    p = plan(load_task(task))
    assert p.metric.name == "regex"


# --------------------------------------------------------------------------- python -m


def test_python_m_promptascent_imports_nothing_from_the_current_folder(tmp_path: Path) -> None:
    """A folder holding modules named like promptascent's dependencies (yaml, pydantic,
    httpx, typer, rich) or like the module a task names: none of them runs."""
    marker = tmp_path / "imported.txt"
    for name in ("yaml", "pydantic", "httpx", "typer", "rich", "my_metrics"):
        plant_module(tmp_path, name, marker)
    task = write_animal_task(tmp_path / "t")
    task.write_text(task.read_text().replace("choice_accuracy", "my_metrics:score"))
    listed = cli("runs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    proc = cli("optimize", str(task), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot import 'my_metrics'" in proc.stderr and "./my_metrics.py" in proc.stderr
    assert not marker.exists()


# --------------------------------------------------------------------------- scripted backend


def test_the_scripted_backend_is_refused_outside_tests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = write_animal_task(tmp_path / "t", extra=SCRIPTED_MODELS)
    monkeypatch.delenv(TEST_BACKENDS_ENV)
    with pytest.raises(ConfigError, match=r"models\.task\.backend: the scripted backend is a test"):
        load_task(task)
    with pytest.raises(ValueError, match="test double"):
        ModelSpec.parse("scripted:scripted_cli:task")
    env = {k: v for k, v in os.environ.items() if k != TEST_BACKENDS_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "promptascent", "optimize", str(task), "--dry-run"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(TESTS)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "scripted backend is a test double" in proc.stderr
    monkeypatch.setenv(TEST_BACKENDS_ENV, "1")
    assert load_task(task).models.task.backend == "scripted"


# --------------------------------------------------------------------------- keys in URLs


@pytest.mark.parametrize("userinfo", ["me:hunter2-secret", "hunter2-secret"])
def test_a_base_url_holding_credentials_is_refused_before_anything_is_written(
    tmp_path: Path, userinfo: str
) -> None:
    """The run store and reports keep the model specs: a key in the URL would be
    written there, so it is refused with the way to pass a key instead, from the task
    file and from --ROLE-model, and the error never repeats the secret."""
    url = f"http://{userinfo}@127.0.0.1:9/v1"
    task = write_animal_task(
        tmp_path / "task",
        extra=f"models:\n  task: {{backend: openai, model: m, base_url: '{url}'}}\n",
    )
    with pytest.raises(ConfigError, match=r"models\.task\.base_url: holds a user name") as e:
        load_task(task)
    assert "hunter2" not in str(e.value) and "api_key_env" in str(e.value)

    plain = write_animal_task(tmp_path / "plain")
    done = cli("optimize", str(plain), "--task-model", f"openai:m@{url}", "--runs-dir",
               str(tmp_path / "runs"), cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2
    assert "--task-model base_url: holds a user name or password" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "runs").exists()


def test_resume_and_refine_score_with_the_runs_own_code_metric(tmp_path: Path) -> None:
    """A run scored by a code metric (half credit: 0.5 for a right answer, which no
    built-in metric gives) is killed mid-run and resumed, then refined: both go on with
    the metric the run recorded, so the key prompt scores 0.5 on test, not 1.0."""
    import random

    from test_kill_resume import kill_and_resume

    task_dir = tmp_path / "task"
    task_dir.mkdir()
    (task_dir / "half.py").write_text(
        "def score(output, example):\n    return 0.5 * float(example.target in output)\n",
        encoding="utf-8",
    )
    task = write_animal_task(task_dir, extra=SCRIPTED_MODELS)
    task.write_text(task.read_text().replace("choice_accuracy", "'./half.py:score'"))
    root = tmp_path / "k"
    got, _, kills = kill_and_resume(root, task, [8], random.Random(0), no_cache=False)
    assert kills and kills[0].landed, kills
    assert got["test"]["best"]["mean"] == 0.5 and got["test"]["seed"]["mean"] == 0.0
    refined = cli(
        "refine", "r", "--feedback", "Keep it short.", "--run-id", "f", "-q",
        cwd=root, pythonpath=[TESTS],
    )  # fmt: skip
    assert refined.returncode == 0, refined.stderr
    result = json.loads((root / "runs" / "f" / "result.json").read_text())
    assert result["test"]["seed"]["mean"] == 0.5  # the resumed run's best, half credit
