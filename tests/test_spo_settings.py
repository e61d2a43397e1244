"""MetaGPT SPO settings files load as tasks (prompt, requirements, count, qa), and a
malformed one is a one-line ConfigError naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_spo import CAPS, ScriptedOptimizer, capitals_judge, task_responder

from promptascent import RunSettings, optimize
from promptascent.config.task import load_task
from promptascent.errors import ConfigError
from promptascent.llm.scripted import ScriptedLLM
from promptascent.metrics.judge import DEFAULT_RUBRIC, RubricJudge
from promptascent.runner import plan

# The shape of metagpt/ext/spo/settings/Navigate.yaml (geekan/MetaGPT).
NAVIGATE = """\
prompt: |
  Please think step by step.
  Ensure the response concludes with the answer in the XML format:
  <answer>[Yes or No]</answer>.

requirements: |
  Must put the final answer at the end with XML. (<answer>(Yes or No)</answer>,such as
  <answer>Yes</answer>)
  The provided prompt needs to adapt to all current types of questions.

count: None

qa:
  - question: |
        If you follow these instructions, do you return to the starting point?
        Always face forward. Take 7 steps left. Take 2 steps backward.
        Options:
        - Yes
        - No

    answer: |
        A lot of thinking and analysis processes.
        ...
        Final Answer:
        <answer>(Yes or No)</answer>

  - question: |
        If you follow these instructions, do you return to the starting point?
        Turn left. Turn left. Take 6 steps.
        Options:
        - Yes
        - No

    answer: |
        Final Answer:
        <answer>(Yes or No)</answer>
"""

# The shape of metagpt/ext/spo/settings/Poem.yaml: no requirements, no answers.
POEM = """\
prompt: |
  Create poetry in the requested style and format.

requirements: |
  None

count: None

qa:
  - question: |
      Write a modern sonnet about climate change
    answer: |
      None

  - question: |
      Create a haiku series about New York City
    answer: |
      None
"""


def write(tmp_path: Path, text: str, name: str = "Settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_metagpt_settings_file_is_a_task(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, NAVIGATE, "Navigate.yaml"))
    assert spec.name == "Navigate"
    assert spec.requirements.startswith("Must put the final answer at the end with XML.")
    assert spec.optimizer.name == "spo" and spec.optimizer.options() == {}
    assert spec.metric == {"name": "judge", "rubric": spec.requirements}
    p = plan(spec)
    assert p.seed_prompt.instruction.startswith("Please think step by step.")
    assert "<answer>[Yes or No]</answer>" in p.seed_prompt.instruction
    assert [ex.id for ex in p.data.train] == ["Navigate-0", "Navigate-1"]
    first = p.data.train[0]
    assert first.input_text.startswith("If you follow these instructions")
    assert first.target is not None and first.target.endswith("<answer>(Yes or No)</answer>")
    assert len(p.data.dev) == 0 and p.data.test is None
    assert isinstance(p.metric, RubricJudge) and p.metric.rubric == spec.requirements


def test_none_means_absent_as_in_metagpt(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, POEM, "Poem.yaml"))
    assert spec.requirements == "" and spec.metric == {"name": "judge"}
    p = plan(spec)
    assert all(ex.target is None for ex in p.data.train)
    assert isinstance(p.metric, RubricJudge) and p.metric.rubric == DEFAULT_RUBRIC


def test_faq_count_and_braces(tmp_path: Path) -> None:
    text = (
        "prompt: 'Answer as JSON: {\"answer\": ...}'\nrequirements: Short.\ncount: 40\n"
        "faq:\n  - {question: Hi, answer: 12}\n"
    )
    spec = load_task(write(tmp_path, text))
    assert spec.optimizer.options() == {"prompt_words": 40}
    p = plan(spec)
    # the prompt is literal text: its braces are not template placeholders
    (message,) = p.seed_prompt.render(p.data.train[0].fields)
    assert message.content == 'Answer as JSON: {"answer": ...}\n\nHi'
    assert p.data.train[0].target == "12"
    assert p.optimizer.config.prompt_words == 40  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prompt: x\nqa: [{question: q}]\n", "missing key 'requirements'"),
        ("prompt: x\nrequirements: r\n", "missing key 'qa'"),
        ("prompt: x\nrequirements: r\nqa: q\n", "qa: expected a non-empty list"),
        ("prompt: x\nrequirements: r\nqa: []\n", "qa: expected a non-empty list"),
        ("prompt: x\nrequirements: r\nqa: [{answer: a}]\n", "qa[0]: missing key 'question'"),
        ("prompt: x\nrequirements: r\nqa: [{question: ''}]\n", "qa[0].question: empty"),
        ("prompt: x\nrequirements: r\nqa: [q]\n", "qa[0]: expected a mapping"),
        ("prompt: x\nrequirements: r\nqa: [{question: q, hint: h}]\n", "unknown key 'hint'"),
        ("prompt: x\nrequirements: r\nqa: [{question: [1]}]\n", "qa[0].question: expected text"),
        ("prompt: x\nrequirements: r\ncount: many\nqa: [{question: q}]\n", "count:"),
        ("prompt: x\nrequirements: r\ncount: -3\nqa: [{question: q}]\n", "count:"),
        ("prompt: x\nrequirements: r\nqa: [{question: q}]\nrounds: 3\n", "unknown key 'rounds'"),
        ("prompt: x\nrequirements: r\nqa: [{question: q}]\nfaq: []\n", "'qa' or 'faq'"),
        ("prompt: {a: 1}\nrequirements: r\nqa: [{question: q}]\n", "prompt: expected text"),
    ],
)
def test_bad_settings_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_task(path)
    assert str(path) in str(e.value) and message in str(e.value)
    assert "\n" not in str(e.value)


def test_an_optimizer_that_selects_on_dev_is_refused(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, POEM))
    with pytest.raises(ConfigError, match="no dev split"):
        plan(spec, optimizer="ape")


def test_a_settings_file_runs_spo_end_to_end(tmp_path: Path) -> None:
    text = (
        "prompt: Repeat the word.\nrequirements: Answer in capital letters.\ncount: None\n"
        "qa:\n  - {question: cat, answer: None}\n  - {question: dog, answer: None}\n"
        "  - {question: owl, answer: None}\n"
    )
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        backends={
            "task": ScriptedLLM(task_responder, model_id="caps-task"),
            "optimizer": ScriptedLLM(ScriptedOptimizer([f"<prompt>{CAPS}</prompt>"])),
            "judge": ScriptedLLM(capitals_judge, model_id="caps-judge"),
        },
    )
    result = optimize(write(tmp_path, text), options={"rounds": 2}, settings=settings)
    assert result.best.prompt.instruction == CAPS
    assert result.judge is not None and result.judge["votes"] == 4
    assert any("selected without labels" in n for n in result.notes)


def test_the_example_settings_file_loads(repo: Path) -> None:
    for path in sorted((repo / "examples/tasks").glob("spo_*.yaml")):
        p = plan(load_task(path))
        assert p.optimizer.name == "spo" and len(p.data.train) >= 3
