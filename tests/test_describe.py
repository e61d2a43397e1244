"""The describe pipeline: intent analysis, synthetic data, strategy selection, and
`optimize --describe` end to end, on scripted models (and once on the real one)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
import scripted_describe
from scripted_describe import (
    DESCRIBED_TASK_FILE,
    DISPUTED,
    OPT,
    TASK,
    TICKETS,
    optimizer_responder,
    task_responder,
)
from scripted_describe import run_cli as cli

import promptascent
from promptascent.config.task import load_task
from promptascent.describe.intent import (
    analyse_intent,
    draft_from_fields,
    labels_from_description,
    parse_intent_reply,
)
from promptascent.describe.pipeline import synth_budget, synth_task
from promptascent.describe.strategy import choose_optimizer
from promptascent.describe.synth import (
    near_duplicate,
    read_generation,
    split_examples,
    synthesize,
)
from promptascent.errors import ConfigError, DataError, ModelRequestError, ModelServerError
from promptascent.llm.budget import Budget, BudgetGuard
from promptascent.llm.client import ModelClient
from promptascent.llm.scripted import ScriptedLLM
from promptascent.llm.types import CompletionRequest, messages
from promptascent.llm.usage import UsageMeter
from promptascent.runner import RunSettings

TESTS = Path(__file__).resolve().parent


def client_for(
    responder: Callable[[CompletionRequest], str], budget: Budget | None = None
) -> tuple[ModelClient, ScriptedLLM]:
    llm = ScriptedLLM(responder, model_id="scripted-describe")
    meter = UsageMeter()
    return ModelClient(
        "optimizer", llm, meter=meter, guard=BudgetGuard(budget or Budget(), meter)
    ), llm


def ticket_draft():  # type: ignore[no-untyped-def]
    return draft_from_fields(TICKETS, parse_intent_reply(scripted_describe.INTENT_REPLY))


# --------------------------------------------------------------------------- labels


@pytest.mark.parametrize(
    ("description", "labels"),
    [
        (TICKETS, ("low", "medium", "high")),
        (
            "Given navigation instructions, answer True if following them returns you to "
            "the starting point, otherwise False.",
            ("True", "False"),
        ),
        ("Say yes when the review is positive and no otherwise.", ("yes", "no")),
        ('Reply with "spam" if the email is spam, else "ham".', ("spam", "ham")),
        ("Answer the question if you can, otherwise say you do not know.", ()),
        ("Decide whether a movie review is positive or negative", ("positive", "negative")),
        ("Label each email as spam or not spam.", ("spam", "not spam")),
        (
            "Classify the headline into one of: sports, politics, business",
            ("sports", "politics", "business"),
        ),
        ("Classify each ticket as one of A, B, C", ("A", "B", "C")),
        ("Is the statement true or false?", ("true", "false")),
        ("Answer with yes/no: does the sentence contain a name?", ("yes", "no")),
        ("Sentiment of tweets (positive, negative, neutral)", ("positive", "negative", "neutral")),
        ("Tell whether the customer is angry, neutral or happy.", ("angry", "neutral", "happy")),
        ("Classify sentiment as 'positive' or 'negative'", ("positive", "negative")),
        ("Classify reviews as positive or negative based on the text", ("positive", "negative")),
        (
            "Triage bug reports: critical, major, minor, trivial",
            ("critical", "major", "minor", "trivial"),
        ),
        ("Summarize news articles in two sentences", ()),
        ("Translate English sentences into French", ()),
        ("Extract all person names from the text", ()),
        ("Answer trivia questions about history or geography", ()),
        ("Rewrite the text as formal or casual English", ()),
        ("Write a haiku about the sea", ()),
    ],
)
def test_labels_named_in_the_description(description: str, labels: tuple[str, ...]) -> None:
    assert labels_from_description(description) == labels


# --------------------------------------------------------------------------- replies


def test_reply_parsing_is_tolerant() -> None:
    plain = parse_intent_reply(scripted_describe.INTENT_REPLY)
    assert plain["type"] == "classification" and plain["labels"] == "low, medium, high"
    markdown = parse_intent_reply(
        "Sure! Here you go:\n1. **Name**: urgency\n- **Type:** Classification\n"
        "* Classes = Low / Medium / High\n**Instruction**: Rate the ticket."
    )
    assert markdown == {
        "name": "urgency",
        "type": "Classification",
        "labels": "Low / Medium / High",
        "prompt": "Rate the ticket.",
    }
    as_json = parse_intent_reply('Answer: {"task_type": "qa", "labels": [], "prompt": "Answer it"}')
    assert as_json["type"] == "qa" and "labels" not in as_json
    assert parse_intent_reply("I think this is a very interesting task about tickets.") == {}
    assert parse_intent_reply("") == {}
    # Repeating the template's own explanations gives no value.
    echoed = parse_intent_reply(
        "name: a short name for the task\ntype: classification, generation, extraction or qa"
    )
    assert echoed == {}
    # ... also quoted, capitalised, as list items (SmolLM2's reply, intent_probe.py)
    quoted = parse_intent_reply(
        '- Input: "What one input is, in a few words."\n'
        '- Prompt: "One instruction that tells a model how to do the task."'
    )
    assert quoted == {}


def test_description_labels_win_and_repairs_are_noted() -> None:
    draft = draft_from_fields(
        TICKETS, {"type": "generation", "labels": "urgent, not urgent", "prompt": "Do it."}
    )
    assert draft.labels == ("low", "medium", "high") and draft.task_type == "classification"
    assert any("taken from the description" in n for n in draft.notes)
    assert any("said generation" in n for n in draft.notes)
    assert draft.metric == "choice_accuracy"
    assert draft.seed_prompt == TICKETS + "."  # "Do it." is too short to be a prompt
    assert draft.answer_format == "Answer with exactly one of: low, medium, high. Say nothing else."


def test_classification_without_labels_is_repaired_to_open_ended() -> None:
    draft = draft_from_fields(
        "Summarize news articles in two sentences",
        {"type": "classification", "labels": "none", "name": "x" * 3},
    )
    assert draft.task_type == "generation" and draft.labels == ()
    assert any("no label set" in n for n in draft.notes)
    assert isinstance(draft.metric, dict) and draft.metric["name"] == "judge"
    assert "Summarize news articles" in draft.metric["rubric"]


def test_model_labels_are_used_when_the_description_names_none() -> None:
    draft = draft_from_fields(
        "Sort incoming emails by department", {"labels": "Sales; Support; Billing"}
    )
    assert draft.labels == ("Sales", "Support", "Billing") and draft.classification


def test_the_draft_is_a_task_file_load_task_accepts(tmp_path: Path) -> None:
    draft = ticket_draft()
    path = tmp_path / "task.yaml"
    path.write_text(draft.to_yaml({"train": "train.jsonl", "dev": "dev.jsonl"}), encoding="utf-8")
    task = load_task(path)
    assert task.name == "ticket-urgency" and task.metric == "choice_accuracy"
    assert task.seed_prompt.output_format.startswith("Answer with exactly one of: low")  # type: ignore[union-attr]
    assert path.read_text().startswith("# Drafted by promptascent")


@pytest.mark.parametrize(
    "responder",
    [
        lambda r: "",
        lambda r: "Lorem ipsum dolor sit amet, tickets are nice and so on.",
        lambda r: (_ for _ in ()).throw(ModelServerError("HTTP 500")),
    ],
    ids=["empty", "prose", "failing"],
)
def test_a_useless_model_leaves_a_draft_made_by_rules(
    responder: Callable[[CompletionRequest], str],
) -> None:
    client, _ = client_for(responder)
    draft = analyse_intent(TICKETS, client)
    assert not draft.from_model and draft.labels == ("low", "medium", "high")
    assert "rules only" in draft.notes[0]
    assert draft.seed_prompt == TICKETS + "."


def test_an_exhausted_budget_also_falls_back_to_rules() -> None:
    client, _ = client_for(optimizer_responder, Budget(optimizer_calls=1))
    client.complete(CompletionRequest(messages=messages(("user", "hi"))))  # the only call
    draft = analyse_intent(TICKETS, client)
    assert not draft.from_model and "budget exhausted" in draft.notes[0]


@pytest.mark.parametrize(
    ("description", "message"), [("   ", "empty"), ("x " * 1500, "characters")]
)
def test_bad_descriptions_are_one_line_errors(description: str, message: str) -> None:
    client, _ = client_for(optimizer_responder)
    with pytest.raises(ConfigError, match=message):
        analyse_intent(description, client)


# --------------------------------------------------------------------------- synthesis


def test_near_duplicates() -> None:
    a = "My password reset link does not work since Monday."
    assert near_duplicate(a, "my password reset link does not work since monday!!")
    assert near_duplicate(a, "My password reset link does not work since Tuesday.")
    assert not near_duplicate(a, "The printer on floor 3 prints blank pages.")
    assert not near_duplicate("Server down", "Printer jammed")


def test_malformed_generations_are_named() -> None:
    draft = ticket_draft()
    assert read_generation("<input>The VPN drops every hour.</input>", draft) == (
        "The VPN drops every hour.",
        "",
    )
    assert read_generation("Here is a support ticket: 'Printer jammed again.'", draft)[0] == (
        "Printer jammed again."
    )
    assert read_generation("   ", draft) == (None, "empty")
    assert read_generation("word " * 300, draft) == (None, "too long")
    assert read_generation("Write one new support ticket for this task", draft)[1] == (
        "echoes the template"
    )
    assert read_generation("<input>high</input>", draft) == (None, "label as input")
    assert read_generation(f"Task: {TICKETS}\n\nInput: The VPN is down.", draft)[0] == (
        "The VPN is down."
    )
    assert read_generation(f"Task: {TICKETS}", draft) == (None, "echoes the template")
    assert read_generation("Low: 7.2. 0.2. 1. 1. 2. 7.2. 1. 3. 2.", draft) == (None, "not text")
    assert read_generation("The printer is on fire and", draft, finished=False) == (
        None,
        "cut off",
    )
    assert read_generation("Printer down.\n\nMore rambling that was cut", draft, finished=False)[
        0
    ] == ("Printer down.")
    assert read_generation("Urgency: high", draft) == (None, "label as input")


def test_synthesis_is_balanced_deduplicated_and_counts_what_it_drops(tmp_path: Path) -> None:
    replies = iter(["", "<input>high</input>", "<input>Printer jammed on floor two.</input>"] * 2)

    def responder(request: CompletionRequest) -> str:
        # six scripted replies (garbage, a label, a duplicate), then good tickets
        reply = next(replies, None)
        return optimizer_responder(request) if reply is None else reply

    client, _ = client_for(responder)
    result = synthesize(ticket_draft(), client, 12, random.Random(0), out_dir=tmp_path)
    assert len(result.examples) == 12
    assert result.dropped["empty"] == 2 and result.dropped["label as input"] == 2
    assert result.dropped["duplicate"] == 1  # the second identical ticket
    counts = result.label_counts
    assert max(counts.values()) - min(counts.values()) <= 1 and set(counts) == {
        "low",
        "medium",
        "high",
    }
    for ex in result.examples:
        if ex.meta.get("boundary"):
            label, other = ex.meta["boundary"].split("|")
            assert ex.target == label and other != label
    rows = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    dev = (tmp_path / "dev.jsonl").read_text().splitlines()
    assert len(rows) + len(dev) == 12 and rows[0]["choices"] == ["low", "medium", "high"]
    assert not (tmp_path / "accepted.jsonl").exists()


def test_near_duplicate_generations_are_dropped() -> None:
    def responder(request: CompletionRequest) -> str:
        return f"<input>The printer on floor {request.sample_index % 3} is jammed again.</input>"

    client, _ = client_for(responder)
    draft = draft_from_fields("Summarize the ticket", {})
    with pytest.raises(DataError, match="near duplicate"):
        synthesize(draft, client, 6, random.Random(0), attempts_per_example=1)


def test_zero_usable_generations_is_an_error_naming_the_counts() -> None:
    client, _ = client_for(lambda r: "")
    with pytest.raises(DataError, match=r"0 usable inputs from 12 generations \(dropped: empty 12"):
        synthesize(ticket_draft(), client, 4, random.Random(0))


@pytest.mark.parametrize("n", [0, 1, 5000])
def test_bad_n_is_an_error(n: int) -> None:
    client, llm = client_for(optimizer_responder)
    with pytest.raises(ConfigError, match=r"^examples: "):
        synthesize(ticket_draft(), client, n, random.Random(0))
    assert not llm.requests


def test_budget_exhaustion_keeps_the_rows_so_far(tmp_path: Path) -> None:
    client, llm = client_for(optimizer_responder, Budget(optimizer_calls=5))
    result = synthesize(ticket_draft(), client, 12, random.Random(0), out_dir=tmp_path)
    assert len(result.examples) == 5 and result.stopped_by == "optimizer_calls"
    assert any("stopped early (optimizer_calls)" in line for line in result.summary())
    assert len(llm.requests) == 5
    assert (tmp_path / "train.jsonl").exists() and (tmp_path / "dev.jsonl").exists()


def test_label_check_records_disagreements() -> None:
    def responder(request: CompletionRequest) -> str:
        if "Which answer is right" in request.messages[-1].content:
            return "I would say low."
        return optimizer_responder(request)

    client, _ = client_for(responder)
    result = synthesize(ticket_draft(), client, 6, random.Random(0), check_labels="record")
    disagreeing = [ex for ex in result.examples if ex.target != "low"]
    assert result.label_disagreements == len(disagreeing) == 4
    assert all(ex.meta["model_label"] == "low" for ex in disagreeing)


class CheckScript:
    """The optimizer model with scripted label checks: the 1st and 4th name another
    label, the 2nd names none, the 3rd fails; later ones agree. `checked` holds the
    input of each check, in order."""

    def __init__(self) -> None:
        self.checked: list[str] = []

    def __call__(self, request: CompletionRequest) -> str:
        text = request.messages[-1].content
        if "Which answer is right" not in text:
            return optimizer_responder(request)
        self.checked.append(text.split("Input: ", 1)[1].split("\n\nWhich answer", 1)[0])
        right = task_responder(request, formatted=True)
        k = len(self.checked)
        if k in (1, 4):
            return {"low": "medium", "medium": "high", "high": "low"}[right]
        if k == 2:
            return "I cannot tell."
        if k == 3:
            raise ModelRequestError("scripted failure")
        return right


def test_label_check_drops_disagreeing_inputs_and_keeps_unchecked_ones(tmp_path: Path) -> None:
    script = CheckScript()
    client, _ = client_for(script)
    result = synthesize(
        ticket_draft(), client, 6, random.Random(0), out_dir=tmp_path, check_labels="drop"
    )
    disagreeing = [script.checked[0], script.checked[3]]
    unchecked = [script.checked[1], script.checked[2]]
    kept = [ex.input_text for ex in result.examples]
    assert result.attempts == 8 and len(script.checked) == 8
    assert result.dropped == {"label disagreement": 2}
    assert result.label_disagreements == 0 and result.labels_unchecked == 2
    assert kept == [t for t in script.checked if t not in disagreeing]
    assert all(t in kept for t in unchecked) and not any(t in kept for t in disagreeing)
    assert [ex.id for ex in result.examples] == [f"synth-{i:03d}" for i in range(6)]
    assert not any("model_label" in ex.meta for ex in result.examples)
    rows = [
        json.loads(line)
        for name in ("train", "dev")
        for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()
    ]
    assert sorted(r["input"] for r in rows) == sorted(kept)
    summary = result.summary()
    assert "dropped: label disagreement 2" in summary
    assert any("no usable answer on 2 kept inputs" in line for line in summary)
    assert not any("differed" in line for line in summary)


def test_label_check_record_keeps_disagreeing_inputs_with_the_same_script() -> None:
    script = CheckScript()
    client, _ = client_for(script)
    result = synthesize(ticket_draft(), client, 6, random.Random(0), check_labels="record")
    assert result.attempts == 6 and result.dropped == {}
    assert result.label_disagreements == 2 and result.labels_unchecked == 2
    said = {ex.input_text: ex.meta.get("model_label") for ex in result.examples}
    assert [t for t, label in said.items() if label] == [script.checked[0], script.checked[3]]


@pytest.mark.parametrize("value", [True, False, "yes", None])
def test_label_check_takes_off_record_or_drop(value: object) -> None:
    client, llm = client_for(optimizer_responder)
    with pytest.raises(ConfigError, match="expected one of off, record, drop"):
        synthesize(ticket_draft(), client, 6, random.Random(0), check_labels=value)  # type: ignore[arg-type]
    assert not llm.requests


def test_the_default_budget_counts_the_label_checks() -> None:
    assert synth_budget(10).optimizer_calls == 32
    assert synth_budget(10, check_labels="record").optimizer_calls == 42
    assert synth_budget(10, check_labels="drop").optimizer_calls == 62


def test_split_is_seeded_and_balanced() -> None:
    client, _ = client_for(optimizer_responder)
    examples = synthesize(ticket_draft(), client, 12, random.Random(1)).examples
    a = split_examples(examples, random.Random(5), dev_fraction=0.25, test_fraction=0.25)
    b = split_examples(examples, random.Random(5), dev_fraction=0.25, test_fraction=0.25)
    assert a == b and [len(a[k]) for k in ("train", "dev", "test")] == [6, 3, 3]
    assert {ex.target for ex in a["test"]} == {"low", "medium", "high"}


def test_same_seed_same_folder_repeats_no_paid_call(tmp_path: Path) -> None:
    def run() -> tuple[list[str], int]:
        llm = ScriptedLLM(optimizer_responder, model_id="scripted-describe")
        settings = RunSettings(cache_dir=None, backends={"optimizer": llm})
        outcome = synth_task(TICKETS, out_dir=tmp_path / "out", n=10, settings=settings, seed=3)
        return [ex.input_text for ex in outcome.synth.examples], len(llm.requests)

    first, paid = run()
    again, paid_again = run()
    assert first == again and paid == 11 and paid_again == 0  # 1 intent + 10 inputs


# --------------------------------------------------------------------------- strategy


@pytest.mark.parametrize(
    ("args", "name", "why"),
    [
        (("classification", 20, 10, 200, True), "ape", "small budget"),
        (("classification", 20, 10, None, True), "ape", "no budget given"),
        (("classification", 40, 20, 300, True), "exemplars", "medium budget"),
        (("classification", 40, 20, 800, True), "exemplars", "BENCHMARKS.md section 4"),
        (("classification", 100, 60, 5000, True), "capo", "large budget"),
        (("classification", 100, 20, 5000, True), "exemplars", "dev split under 30"),
        (("classification", 6, 4, 5000, True), "exemplars", "very few examples"),
        (("generation", 20, 10, 200, False), "ape", "SPO is not available"),
    ],
)
def test_strategy_rules(args: tuple, name: str, why: str) -> None:  # type: ignore[type-arg]
    choice = choose_optimizer(*args, available=["ape", "capo", "exemplars", "protegi"])
    assert choice.name == name and why in choice.reason
    assert f"{args[1]} train / {args[2]} dev" in choice.reason


def test_open_ended_prefers_spo_when_registered() -> None:
    choice = choose_optimizer("qa", 20, 10, 200, False, available=["ape", "spo"])
    assert choice.name == "spo" and "needs no labels" in choice.reason


# --------------------------------------------------------------------------- end to end


def test_optimize_with_a_description_from_python(tmp_path: Path) -> None:
    llm = ScriptedLLM(optimizer_responder, model_id="opt")
    task = ScriptedLLM(task_responder, model_id="task")
    settings = RunSettings(
        runs_dir=tmp_path / "runs",
        cache_dir=None,
        backends={"task": task, "optimizer": llm, "judge": task},
    )
    result = promptascent.optimize(
        description=TICKETS, out=tmp_path / "out", examples=24, settings=settings
    )
    assert result.test_best is not None and result.test_best.n == 6
    assert any(n.startswith("synthetic data:") for n in result.notes)
    assert any(n.startswith("optimizer: ") and "exemplars" in n for n in result.notes)
    assert "optimizer:\n  name: exemplars" in (tmp_path / "out" / "task.yaml").read_text()


def test_cli_synth_end_to_end_and_rerun_from_the_journal(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    args = ("synth", TICKETS, "--n", "12", "--out", "data", "--optimizer-model", OPT)
    out = cli(*args, "--no-cache", cwd=tmp_path, log=log).stdout
    assert "task: ticket-urgency (classification: low, medium, high)" in out
    assert "kept 12 of 12 wanted" in out and "labels: low 4, medium 4, high 4" in out
    assert "dropped: none" in out
    assert load_task(tmp_path / "data" / "task.yaml").data.train is not None
    first = log.read_text().count("optimizer")
    assert first == 13
    again = cli(*args, "--no-cache", cwd=tmp_path, log=log).stdout
    assert log.read_text().count("optimizer") == first  # no new paid call
    assert "13 calls, 13 from cache" in again


def test_cli_synth_drop_disagreeing_writes_only_agreeing_inputs(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    contrarian = "scripted:scripted_describe:contrarian"
    args = ("synth", TICKETS, "--n", "12", "--optimizer-model", contrarian, "--no-cache", "-q")
    out = cli(*args, "--out", "drop", "--drop-disagreeing", cwd=tmp_path, log=log).stdout
    disagreed = log.read_text().count("disagree")
    assert disagreed >= 1
    assert "kept 12 of 12 wanted" in out and f"dropped: label disagreement {disagreed}\n" in out
    rows = [
        json.loads(line)
        for name in ("train", "dev")
        for line in (tmp_path / "drop" / f"{name}.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 12 and not any(DISPUTED in r["input"] for r in rows)
    assert not any("model_label" in r for r in rows)

    # --check-labels alone keeps them, with the model's label; no flag: no check.
    out = cli(*args, "--out", "record", "--check-labels", cwd=tmp_path).stdout
    assert "dropped: none" in out and "the model's own label differed on" in out
    rows = (tmp_path / "record" / "train.jsonl").read_text() + (
        tmp_path / "record" / "dev.jsonl"
    ).read_text()
    assert DISPUTED in rows and '"model_label"' in rows
    out = cli(*args, "--out", "off", cwd=tmp_path).stdout
    assert "dropped: none" in out and "differed" not in out
    assert "13 calls" in out  # 1 intent + 12 inputs, no check


def test_cli_synth_errors_are_one_line(tmp_path: Path) -> None:
    bad_n = cli("synth", TICKETS, "--n", "0", "--optimizer-model", OPT, cwd=tmp_path, check=False)
    assert bad_n.returncode == 2 and bad_n.stderr.startswith("error: --n: 0 examples")
    empty = cli("synth", " ", "--optimizer-model", OPT, cwd=tmp_path, check=False)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "description: empty" in empty.stderr
    garbage = cli(
        "synth", TICKETS, "--n", "4", "--no-cache", "-q",
        "--optimizer-model", "scripted:scripted_describe:garbage",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert garbage.returncode == 2 and garbage.stderr.count("\n") == 1
    assert "0 usable inputs from 12 generations (dropped: empty 12)" in garbage.stderr


def test_cli_optimize_describe_yes_runs_end_to_end(tmp_path: Path) -> None:
    out = cli(
        "optimize", "--describe", TICKETS, "--yes", "--out", "gen", "--examples", "24",
        "--task-model", TASK, "--optimizer-model", OPT, "--judge-model", TASK,
        "--runs-dir", "runs", "--no-cache", "-q",
        cwd=tmp_path,
    ).stdout  # fmt: skip
    assert "drafted task (classification), written to gen/task.yaml" in out
    assert out.index("drafted task") < out.index("synthetic data:") < out.index("held-out test")
    assert "optimizer: classification, " in out and "so exemplars" in out
    run_dir = Path(out.split("run written to", 1)[1].split()[0])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["test"]["seed"]["n"] == 6
    assert any("synthetic data" in n for n in result["notes"])


def test_cli_optimize_a_task_file_holding_only_a_description(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        DESCRIBED_TASK_FILE,
        encoding="utf-8",
    )
    out = cli("optimize", "t.yaml", "--runs-dir", "runs", "--no-cache", "-q", cwd=tmp_path).stdout
    assert "optimizer: random: from the task file" in out
    run_dir = Path(out.split("run written to", 1)[1].split()[0])
    assert "-random-" in run_dir.name
    assert (tmp_path / "gen" / "test.jsonl").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: x\nexampels: 3\n", encoding="utf-8")
    err = cli("optimize", "bad.yaml", cwd=tmp_path, check=False)
    assert err.returncode == 2 and "unknown key 'exampels' (did you mean 'examples'?)" in err.stderr


@pytest.mark.embedded
def test_describe_on_the_embedded_model(tmp_path: Path, embedded: object) -> None:
    """The real 135M model drafts and writes: whatever it says, the draft validates
    (or is repaired), synthesis keeps or counts every generation, nothing crashes."""
    settings = RunSettings(cache_dir=tmp_path / "cache", backends={"optimizer": embedded})  # type: ignore[dict-item]
    try:
        outcome = synth_task(
            TICKETS, out_dir=tmp_path / "out", n=8, settings=settings,
            budget=Budget(optimizer_calls=20, minutes=5),
        )  # fmt: skip
    except DataError as e:  # too few usable inputs: a clear error naming the counts
        assert "usable inputs from" in str(e)
        return
    draft, result = outcome.draft, outcome.synth
    assert draft.labels == ("low", "medium", "high") and draft.metric == "choice_accuracy"
    assert load_task(outcome.task_path).name == draft.name
    assert len(result.examples) + sum(result.dropped.values()) == result.attempts
    assert result.attempts <= 18
