"""Exports to other tools (promptfoo, LangChain, DSPy, prompt registries), each loaded
by the real library where it installs (the `dev` extra), on a scripted run's store."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from scripted import write_animal_task

from promptascent.config.task import load_task
from promptascent.errors import ConfigError
from promptascent.prompts.export import export_prompt
from promptascent.prompts.export_tools import (
    PromptfooTest,
    example_fields,
    registry_to_template,
    to_dspy,
    to_langchain,
    to_promptfoo,
    to_registry,
)
from promptascent.prompts.prompt import Demo, Prompt
from promptascent.run_export import export_run
from promptascent.runner import Runner, RunSettings, plan
from promptascent.search.pool import Candidate
from promptascent.store.run_store import EXAMPLES_KEY, RunStore

TESTS = Path(__file__).resolve().parent
SCRIPTED_MODELS = """\
models:
  task: {backend: scripted, model: "scripted_cli:task"}
  optimizer: {backend: scripted, model: "scripted_cli:optimizer"}
  judge: {backend: scripted, model: "scripted_cli:task"}
optimizer: {name: ape, num_candidates: 2, eval_examples: 4, rounds: 0, top_k: 1, final_k: 2}
"""

# Literal braces of every kind: ours are doubled, so the model reads `{"label": ...}`,
# `{x}` and a lone `{{`.
BRACES = 'Reply as {{"label": "..."}}; a set is {{x}}; {{{{ opens.\n\n{input}'
RICH = Prompt(
    BRACES,
    system="You label animals. Braces: {{ and }} stay.",
    demos=(Demo("a {curly} cat", "cat"), Demo("dog", "dog")),
    output_format="One word.",
)


def messages(prompt: Prompt, **fields: str) -> list[dict[str, str]]:
    return [m.to_dict() for m in prompt.render(fields or {"input": "x"})]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "promptascent", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture(scope="module")
def animal_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished scripted run (choice_accuracy, with a test split) in runs/r."""
    tmp = tmp_path_factory.mktemp("exports")
    task = load_task(write_animal_task(tmp / "task", extra=SCRIPTED_MODELS))
    runner = Runner(plan(task), RunSettings(runs_dir=tmp / "runs", cache_dir=None), run_id="r")
    runner.run()
    return runner.run_dir


def put_best(run_dir: Path, prompt: Prompt) -> None:
    """Makes `prompt` the run's best (to export a prompt with braces, demos, fields)."""
    store = RunStore.open_existing(run_dir)
    try:
        cand = Candidate(prompt, operation="seed")
        store.add_candidate(cand.record())
        store.put("result", {**store.get("result"), "best_candidate": cand.id})
    finally:
        store.close()


# ----------------------------------------------------------------------------- registry


def registry_format(template: str, **values: str) -> str:
    """How MLflow's PromptVersion.format fills `{{ var }}` (its variable pattern,
    mlflow/prompt/constants.py); Langfuse's `{{name}}` is a subset."""
    import re

    pattern = r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}"
    return re.sub(pattern, lambda m: values[m.group(1)], template)


def test_registry_export_writes_placeholders_as_double_braces_and_literal_braces_as_single() -> (
    None
):
    p = Prompt('Reply as {{"label": 1}}; a set is {{x}}.\n\n{input}', output_format="Short.")
    exported = json.loads(export_prompt(p, "registry"))
    assert exported == {
        "type": "text",
        "prompt": 'Reply as {"label": 1}; a set is {x}.\n\n{{input}}\n\nShort.',
    }
    assert (
        registry_format(exported["prompt"], input="cat") == messages(p, input="cat")[0]["content"]
    )


def test_registry_export_of_a_chat_prompt_is_the_chat_with_placeholders() -> None:
    p = Prompt(
        "Q: {question} C: {context}",
        system="Be {brief}.",
        demos=(Demo({"question": "q", "context": "c"}, "a"),),
    )
    exported = to_registry(p)
    assert exported["type"] == "chat"
    filled = [
        {"role": m["role"], "content": registry_format(m["content"], question="Q1", context="C1")}
        for m in exported["prompt"]
    ]
    assert filled == messages(p, question="Q1", context="C1")
    assert exported["prompt"][-1]["content"] == "Q: {{question}} C: {{context}}"


def test_registry_template_reads_back_as_the_same_instruction() -> None:
    for instruction in ('Reply as {{"a": 1}} for {input}.', "{{x}} and }} then {input}", "{input}"):
        exported = to_registry(Prompt(instruction))["prompt"]
        assert registry_to_template(exported) == instruction
        assert Prompt(registry_to_template(exported)).id == Prompt(instruction).id


@pytest.mark.parametrize(
    "instruction",
    [
        "Write {{{{ and }}}} in Jinja.\n\n{input}",
        # Langfuse reads from `{{` to the next `}}`: this would hide the placeholder
        "Type {{{{ to open a block.\n\n{input}",
        "A {{{input}}}",
    ],
)
def test_registry_export_refuses_literal_text_a_registry_would_read_as_a_variable(
    instruction: str,
) -> None:
    with pytest.raises(ConfigError, match="would be read as a variable"):
        to_registry(Prompt(instruction))


def test_registry_export_keeps_a_literal_double_brace_that_no_closing_braces_follow() -> None:
    p = Prompt("{input}\n\nType {{{{ to open a block.")
    assert to_registry(p)["prompt"] == "{{input}}\n\nType {{ to open a block."


# ----------------------------------------------------------------------------- LangChain


def test_langchain_export_loads_in_langchain_core_and_formats_to_the_scored_messages() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.load import load
    from langchain_core.prompts import ChatPromptTemplate

    template = load(json.loads(export_prompt(RICH, "langchain")), allowed_objects="core")
    assert isinstance(template, ChatPromptTemplate)
    assert template.input_variables == ["input"]
    role = {"system": "system", "human": "user", "ai": "assistant"}
    got = [
        {"role": role[m.type], "content": m.content}
        for m in template.format_messages(input="a {braced} fox")
    ]
    assert got == messages(RICH, input="a {braced} fox")
    assert [m["role"] for m in got] == ["system", "user", "assistant", "user", "assistant", "user"]


def test_langchain_export_is_what_langchain_core_dumpd_writes() -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.load import dumpd, load

    p = Prompt("C: {context} Q: {question}", system="s {{x}}")
    ours = to_langchain(p)
    assert dumpd(load(ours, allowed_objects="core")) == ours


# ----------------------------------------------------------------------------- DSPy


def test_dspy_export_loads_into_predict_with_instructions_and_demos() -> None:
    dspy = pytest.importorskip("dspy")
    state = json.loads(export_prompt(RICH, "dspy"))
    program = dspy.Predict("input -> output")
    program.load_state(state)
    assert program.signature.instructions == (
        "You label animals. Braces: {{ and }} stay.\n\n"
        'Reply as {"label": "..."}; a set is {x}; {{ opens.\n\n`input`\n\nOne word.'
    )
    assert [dict(d) for d in program.demos] == [
        {"input": "a {curly} cat", "output": "cat"},
        {"input": "dog", "output": "dog"},
    ]
    fresh = dspy.Predict("input -> output")
    fresh.load_state(state)
    assert fresh.dump_state() == state  # exactly what dump_state holds


def test_dspy_export_names_demos_by_the_prompts_fields() -> None:
    dspy = pytest.importorskip("dspy")
    p = Prompt(
        "Answer {question} from {context}.",
        demos=(Demo({"question": "q1", "context": "c1"}, "a1"),),
    )
    program = dspy.Predict("question, context -> output")
    program.load_state(to_dspy(p))
    assert program.signature.instructions == "Answer `question` from `context`."
    assert [dict(d) for d in program.demos] == [{"question": "q1", "context": "c1", "output": "a1"}]
    # a demo with text input fills the prompt's one field, whatever its name
    one = to_dspy(Prompt("Q: {question}", demos=(Demo("q", "a"),)))
    assert one["demos"] == [{"question": "q", "output": "a"}]


# ----------------------------------------------------------------------------- promptfoo


def nunjucks(template: str, **values: str) -> str:
    """Renders promptfoo's template syntax (Nunjucks); Jinja reads the same subset."""
    return (
        jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined)
        .from_string(template)
        .render(**values)
    )


def check_promptfoo_shape(config: dict[str, object]) -> None:
    """The keys promptfoo's config requires and the shapes it reads (its UnifiedConfig:
    prompts, providers, tests with vars and assert entries of type and value)."""
    assert {"prompts", "providers", "tests"} <= set(config)
    prompts, providers, tests = config["prompts"], config["providers"], config["tests"]
    assert isinstance(prompts, list) and prompts and isinstance(providers, list) and providers
    for p in prompts:
        assert isinstance(p, dict) and isinstance(p["raw"], str) and isinstance(p["label"], str)
        chat = json.loads(p["raw"])
        assert all(set(m) == {"role", "content"} for m in chat)
    assert isinstance(tests, list) and tests
    for t in tests:
        assert isinstance(t, dict) and isinstance(t["vars"], dict)
        for a in t.get("assert", []):
            assert isinstance(a["type"], str) and ("value" in a or "assert" in a)


def test_promptfoo_export_holds_the_prompt_and_the_test_split_with_equals_for_choice_accuracy(
    animal_run: Path,
) -> None:
    text = export_run(animal_run, "promptfoo")
    config = yaml.safe_load(text)
    check_promptfoo_shape(config)
    store = RunStore.open_existing(animal_run)
    try:
        best = Prompt.from_dict(store.prompt(store.get("result")["best_candidate"]))
        recorded = store.get(EXAMPLES_KEY)["test"]
    finally:
        store.close()
    assert "'choice_accuracy' is written as promptfoo's 'equals'" in text
    assert [t["description"] for t in config["tests"]] == [r["id"] for r in recorded]
    first = config["tests"][0]
    assert first["vars"] == {"input": recorded[0]["input"]}
    assert first["assert"] == [{"type": "equals", "value": recorded[0]["target"]}]
    chat = json.loads(config["prompts"][0]["raw"])
    assert config["prompts"][0]["label"] == best.id
    rendered = [
        {"role": m["role"], "content": nunjucks(m["content"], **first["vars"])} for m in chat
    ]
    assert rendered == messages(best, input=recorded[0]["input"])
    assert "{{input}}" in chat[-1]["content"]


def test_promptfoo_export_escapes_literal_braces_for_nunjucks(
    animal_run: Path, tmp_path: Path
) -> None:

    run = tmp_path / "r"
    shutil.copytree(animal_run, run)
    # literal `{% raw %} {# no comment #} {` + input + `}`; the system text is not a template
    braces = Prompt("{{% raw %}} {{# no comment #}} {{{input}}}", system="{{x}} {%")
    put_best(run, braces)
    config = yaml.safe_load(export_run(run, "promptfoo"))
    chat = json.loads(config["prompts"][0]["raw"])
    assert [{"role": m["role"], "content": nunjucks(m["content"], input="cat")} for m in chat] == (
        messages(braces, input="cat")
    )
    assert chat[-1]["content"] == (
        "{{ '{' }}% raw %} {{ '{' }}# no comment {{ '#' }}} {{ '{' }}{{input}}}"
    )


def test_promptfoo_export_maps_contains_to_icontains_and_other_metrics_to_no_assertion(
    tmp_path: Path,
) -> None:
    for metric, kind in (("contains", "icontains"), ("token_f1", None)):
        task = load_task(write_animal_task(tmp_path / metric, extra=SCRIPTED_MODELS))
        task = task.model_copy(update={"metric": metric})
        runner = Runner(
            plan(task), RunSettings(runs_dir=tmp_path / "runs", cache_dir=None), run_id=metric
        )
        runner.run()
        text = export_run(runner.run_dir, "promptfoo")
        config = yaml.safe_load(text)
        check_promptfoo_shape(config)
        if kind:
            assert all(t["assert"][0]["type"] == kind for t in config["tests"])
        else:
            assert all("assert" not in t for t in config["tests"])
            assert "'token_f1' has no promptfoo assertion" in text


def test_promptfoo_export_without_the_task_data_uses_the_recorded_examples_and_metric(
    animal_run: Path, tmp_path: Path
) -> None:

    run = tmp_path / "r"
    shutil.copytree(animal_run, run)
    store = RunStore.open_existing(run)
    try:
        config = store.get("config")
        store.put("config", {**config, "base_dir": str(tmp_path / "gone")})
    finally:
        store.close()
    exported = yaml.safe_load(export_run(run, "promptfoo"))
    store = RunStore.open_existing(run)
    try:
        recorded = store.get(EXAMPLES_KEY)["test"]
    finally:
        store.close()
    assert [t["vars"] for t in exported["tests"]] == [{"input": r["input"]} for r in recorded]
    assert [t["assert"] for t in exported["tests"]] == [
        [{"type": "equals", "value": r["target"]}] for r in recorded
    ]


# ----------------------------------------------------------------------------- CLI


def test_cli_exports_each_format_and_no_secret(animal_run: Path, tmp_path: Path) -> None:

    runs = tmp_path / "runs"
    shutil.copytree(animal_run, runs / "r")
    store = RunStore.open_existing(runs / "r")
    try:  # the run's task names a key and a server: neither is any export's business
        config = store.get("config")
        config["task"]["models"]["task"].update(
            {"api_key_env": "SECRET_ENV_NAME", "api_key_file": "/secret/key/file"}
        )
        store.put("config", config)
    finally:
        store.close()
    for fmt in ("promptfoo", "langchain", "dspy", "registry"):
        proc = cli("export", "r", "--format", fmt, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip()
        for secret in ("SECRET_ENV_NAME", "/secret/key/file", "api_key", "scripted_cli"):
            assert secret not in proc.stdout, (fmt, secret)


def test_cli_export_refuses_an_unknown_format_and_a_run_without_a_best_prompt(
    animal_run: Path, tmp_path: Path
) -> None:

    runs = tmp_path / "runs"
    shutil.copytree(animal_run, runs / "r")
    bad = cli("export", "r", "--format", "mlflow", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "error: unknown export format 'mlflow': use text, messages, json, promptfoo, "
        "langchain, dspy, registry"
    )
    store = RunStore.open_existing(runs / "r")
    try:
        store.put("result", None)
    finally:
        store.close()
    none = cli("export", "r", "--format", "dspy", cwd=tmp_path)
    assert none.returncode == 2
    assert "error: run r has no best prompt yet (no result); pass --candidate ID" in none.stderr


def test_promptfoo_export_of_a_run_without_a_recorded_task_has_no_assertions(
    tmp_path: Path,
) -> None:
    run = tmp_path / "runs" / "p"
    store = RunStore(run)
    try:
        seed = Candidate(Prompt("Q: {input}"), operation="seed")
        store.add_candidate(seed.record())
        store.put("result", {"best_candidate": seed.id})
        store.put(EXAMPLES_KEY, {"dev": [{"id": "d1", "input": "cat", "target": "dog"}]})
    finally:
        store.close()
    text = export_run(run, "promptfoo")
    assert "metric is not known" in text and "the task's dev split as tests" in text
    assert yaml.safe_load(text)["tests"] == [{"description": "d1", "vars": {"input": "cat"}}]


def test_promptfoo_export_of_a_run_without_examples_says_so(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "p"
    store = RunStore(run)
    try:
        seed = Candidate(Prompt("Q: {input}"), operation="seed")
        store.add_candidate(seed.record())
        store.put("result", {"best_candidate": seed.id})
    finally:
        store.close()
    with pytest.raises(ConfigError, match="recorded no test or dev examples"):
        export_run(run, "promptfoo")
    assert json.loads(export_run(run, "registry")) == {"type": "text", "prompt": "Q: {{input}}"}


def test_promptfoo_export_passes_on_any_accepted_answer_and_fills_named_fields() -> None:
    p = Prompt("C: {context}\nQ: {question}")
    tests = [
        PromptfooTest("a", example_fields(p, {"question": "q", "context": "c"}), ("x", "y")),
        PromptfooTest("b", example_fields(p, {"question": "q2", "context": "c2"}), ("z",)),
    ]
    equals = yaml.safe_load(
        to_promptfoo(p, tests, metric={"name": "exact_match"}, description="d", split="test")
    )
    check_promptfoo_shape(equals)
    assert equals["tests"][0] == {
        "description": "a",
        "vars": {"context": "c", "question": "q"},
        "assert": [
            {
                "type": "assert-set",
                "threshold": 0.5,
                "assert": [{"type": "equals", "value": "x"}, {"type": "equals", "value": "y"}],
            }
        ],
    }
    assert equals["tests"][1]["assert"] == [{"type": "equals", "value": "z"}]
    contains = yaml.safe_load(
        to_promptfoo(p, tests, metric="contains", description="d", split="test")
    )
    assert contains["tests"][0]["assert"] == [{"type": "icontains-any", "value": ["x", "y"]}]
    chat = json.loads(equals["prompts"][0]["raw"])
    assert nunjucks(chat[-1]["content"], **equals["tests"][0]["vars"]) == "C: c\nQ: q"


# promptfoo is an npm package, not in the Python venv: scripts/promptfoo.sh installs the
# pinned one (tools/promptfoo) and `make test` names it by $PROMPTFOO_BIN, so there a
# missing binary fails the test. Run by hand without $PROMPTFOO_BIN, the test uses a
# promptfoo on PATH, and is skipped when there is none (docs/export.md).
def promptfoo_bin() -> str:
    named = os.environ.get("PROMPTFOO_BIN")
    if named:
        if not (os.path.isfile(named) and os.access(named, os.X_OK)):
            pytest.fail(f"PROMPTFOO_BIN={named} is not an executable: run scripts/promptfoo.sh")
        return named
    found = shutil.which("promptfoo")
    if found is None:
        pytest.skip(
            "no promptfoo: run scripts/promptfoo.sh and set PROMPTFOO_BIN="
            ".tools/promptfoo/node_modules/.bin/promptfoo (`make test` does both)"
        )
    return found


# promptfoo must not reach the network: no telemetry, update check, sharing or remote
# generation, and its state (config, results database) in the test's folder. With
# telemetry disabled, promptfoo 0.121 still posts one "telemetry disabled" event (to
# r.promptfoo.app), through the proxy its environment names: the proxy here is a closed
# local port, so that post fails at once and nothing leaves the machine.
def offline_promptfoo_env(home: Path) -> dict[str, str]:
    no_proxy = {"NO_PROXY", "no_proxy"}
    closed = "http://127.0.0.1:9"
    return {
        **{k: v for k, v in os.environ.items() if k not in no_proxy},
        "PROMPTFOO_CONFIG_DIR": str(home),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
        "PROMPTFOO_DISABLE_RUNTIME_WARNINGS": "1",
        **{k: closed for k in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy")},
    }


def test_promptfoo_validates_the_export_and_its_echo_provider_gets_the_scored_messages(
    tmp_path: Path,
) -> None:
    promptfoo = promptfoo_bin()
    p = Prompt(
        "{{% raw %}} {{# no comment #}} {{{input}}} {{{{x}}}}: {question}",
        system='Reply as {"label": ...} {%. Not file://x, package:x.',
        demos=(Demo({"input": "a {{b}}", "question": "q"}, "c"),),
    )
    tests = [
        PromptfooTest("t1", {"input": 'say "hi" {{x}}', "question": "why?"}, ("x", "y")),
        PromptfooTest("t2", {"input": "b", "question": "q"}, ("z",)),
    ]
    config = tmp_path / "promptfooconfig.yaml"
    config.write_text(
        to_promptfoo(p, tests, metric="exact_match", description="d", split="test"),
        encoding="utf-8",
    )
    run = functools.partial(
        subprocess.run,
        cwd=tmp_path,
        env=offline_promptfoo_env(tmp_path / ".promptfoo"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = tmp_path / "out.json"

    def evaluate() -> list[dict[str, Any]]:
        """promptfoo eval's results (it exits 100 when a test fails; other codes are errors)."""
        out.unlink(missing_ok=True)
        done = run([promptfoo, "eval", "-c", str(config), "-o", str(out), "--no-cache"])
        assert done.returncode in (0, 100), done.stderr
        results: list[dict[str, Any]] = json.loads(out.read_text())["results"]["results"]
        # a test promptfoo could not run (a template it refused) has an error, no response
        assert all("response" in r for r in results), [r.get("error") for r in results]
        return results

    valid = run([promptfoo, "validate", "-c", str(config)])
    assert valid.returncode == 0 and "Configuration is valid" in valid.stdout, valid.stderr
    results = evaluate()
    sent = {r["testCase"]["description"]: json.loads(r["response"]["output"]) for r in results}
    assert sent == {t.id: messages(p, **t.fields) for t in tests}

    # The assertions mean what the metric means: any accepted answer passes. The echo
    # provider replies with the prompt, so an answer equal to (or in) that reply passes.
    echo = next(r["response"]["output"] for r in results if r["testCase"]["description"] == "t2")
    for metric, targets, passes in (
        ("exact_match", ("wrong", echo), True),
        ("exact_match", ("wrong", "also wrong"), False),
        ("contains", ("nope", "WHY?"), True),
        ("contains", ("nope", "never"), False),
        ("contains", ("file://x", "{% raw %}"), True),  # neither a file nor a tag
        ("contains", ("package:x",), True),
    ):
        case = PromptfooTest("t", tests[1 if metric == "exact_match" else 0].fields, targets)
        config.write_text(
            to_promptfoo(p, [case], metric=metric, description="d", split="test"),
            encoding="utf-8",
        )
        [result] = evaluate()
        assert result["success"] is passes, (metric, targets, result.get("gradingResult"))


def test_promptfoo_export_refuses_an_input_promptfoo_would_read_as_a_file() -> None:
    case = PromptfooTest("e7", {"input": "file:///etc/passwd"}, ("x",))
    with pytest.raises(ConfigError, match="example e7: field 'input' starts with 'file://'"):
        to_promptfoo(Prompt("{input}"), [case], metric="contains", description="d", split="test")


def test_promptfoo_assertion_values_are_written_as_nunjucks_text() -> None:
    case = PromptfooTest("a", {"input": "x"}, ("{{b}} #}", "file://f", "package:p"))
    config = yaml.safe_load(
        to_promptfoo(Prompt("{input}"), [case], metric="contains", description="d", split="test")
    )
    written = config["tests"][0]["assert"][0]["value"]
    assert written == ["{{ '{' }}{b}} {{ '#' }}}", "{{ 'f' }}ile://f", "{{ 'p' }}ackage:p"]
    assert [nunjucks(v) for v in written] == ["{{b}} #}", "file://f", "package:p"]
