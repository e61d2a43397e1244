"""Tests for task files (promptascent.config.task) and their validation by runner.plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptascent.config.task import ModelSpec, load_task
from promptascent.errors import ConfigError, TemplateError
from promptascent.runner import Plan, plan


def write_split_folder(
    root: Path, *, train: int = 10, dev: int | None = 6, test: int | None = 4
) -> Path:
    """A split folder: task.json plus train/dev/test.jsonl with ids "<split>-<i>"."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "task.json").write_text(
        json.dumps({"name": "opposites", "description": "Give the opposite word."}),
        encoding="utf-8",
    )
    for split, n in (("train", train), ("dev", dev), ("test", test)):
        if n is None:
            continue
        rows = [
            {"id": f"{split}-{i}", "input": f"word {i}", "target": f"drow {i}"} for i in range(n)
        ]
        (root / f"{split}.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
        )
    return root


def write_task(tmp_path: Path, text: str | bytes, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


MINIMAL = "name: opposites\ndata: {folder: data}\n"


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    write_split_folder(tmp_path / "data")
    return tmp_path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_task(path)
    return str(exc.value)


# ----------------------------------------------------------------------------- load_task


def test_minimal_task_loads_with_defaults(task_dir: Path) -> None:
    spec = load_task(write_task(task_dir, MINIMAL))
    assert spec.name == "opposites"
    assert spec.data.folder == Path("data")
    assert spec.base_dir == task_dir
    assert spec.resolve(spec.data.folder) == task_dir / "data"
    assert spec.seed == 0
    assert spec.seed_prompt is None
    assert spec.optimizer.name == "ape"
    assert spec.optimizer.options() == {}
    assert spec.budget == {}
    assert spec.models.task == ModelSpec(backend="embedded")


def test_unknown_top_level_key_names_key_and_file(task_dir: Path) -> None:
    path = write_task(task_dir, MINIMAL + "sede: 3\n")
    msg = config_error(path)
    assert "unknown key 'sede'" in msg
    assert str(path) in msg


def test_unknown_nested_key_names_its_path(task_dir: Path) -> None:
    path = write_task(task_dir, "name: opposites\ndata: {foldr: data}\n")
    msg = config_error(path)
    assert "unknown key 'data.foldr'" in msg
    assert str(path) in msg


def test_missing_name(task_dir: Path) -> None:
    assert "missing key 'name'" in config_error(write_task(task_dir, "data: {folder: data}\n"))


def test_missing_data(task_dir: Path) -> None:
    assert "missing key 'data'" in config_error(write_task(task_dir, "name: x\n"))


def test_wrong_type_names_the_key(task_dir: Path) -> None:
    msg = config_error(write_task(task_dir, MINIMAL + "seed: abc\n"))
    assert "seed: Input should be a valid integer" in msg


def test_non_positive_data_limit(task_dir: Path) -> None:
    msg = config_error(write_task(task_dir, MINIMAL.replace("}", ", limits: {train: 0}}")))
    assert "data.limits" in msg
    assert "limit for train must be positive" in msg


def test_invalid_yaml_reports_file_and_line(task_dir: Path) -> None:
    path = write_task(task_dir, "name: x\ndata: {folder: data\nseed: 1\n")
    assert config_error(path) == f"{path}:3: invalid YAML: expected ',' or '}}', but got ':'"


def test_invalid_yaml_line_is_exact_for_a_bad_indent(task_dir: Path) -> None:
    path = write_task(task_dir, "name: x\ndata:\n  folder: data\n bad: 1\n")
    assert config_error(path).startswith(f"{path}:4: invalid YAML")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n", ""])
def test_yaml_that_is_not_a_mapping(task_dir: Path, text: str) -> None:
    msg = config_error(write_task(task_dir, text))
    assert "a task file is a mapping of keys" in msg


def test_non_utf8_file(task_dir: Path) -> None:
    path = write_task(task_dir, b"name: caf\xe9\ndata: {folder: data}\n")
    msg = config_error(path)
    assert msg == f"{path}: not UTF-8 text (byte 9)"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"{path}: task file not found"


def test_folder_is_not_a_task_file(tmp_path: Path) -> None:
    assert config_error(tmp_path) == f"{tmp_path}: task file not found"


def test_bom_prefixed_file_loads(task_dir: Path) -> None:
    spec = load_task(write_task(task_dir, b"\xef\xbb\xbf" + MINIMAL.encode("utf-8")))
    assert spec.name == "opposites"


# ----------------------------------------------------------------------------- models


def test_model_shorthands(task_dir: Path) -> None:
    path = write_task(
        task_dir,
        MINIMAL + "models:\n"
        "  task: embedded\n"
        '  optimizer: "embedded:/x.gguf"\n'
        '  judge: "openai:gpt-4o-mini@http://127.0.0.1:1/v1"\n',
    )
    models = load_task(path).models
    assert (models.task.backend, models.task.model, models.task.base_url) == (
        "embedded",
        None,
        None,
    )
    assert (models.optimizer.backend, models.optimizer.model) == ("embedded", "/x.gguf")
    assert models.optimizer.base_url is None
    assert (models.judge.backend, models.judge.model, models.judge.base_url) == (
        "openai",
        "gpt-4o-mini",
        "http://127.0.0.1:1/v1",
    )


@pytest.mark.parametrize(
    ("shorthand", "backend", "model", "base_url"),
    [
        ("embedded", "embedded", None, None),
        ("embedded:", "embedded", None, None),
        ("embedded:/m/x.gguf", "embedded", "/m/x.gguf", None),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini", None),
        ("openai:m@http://h:8080/v1", "openai", "m", "http://h:8080/v1"),
    ],
)
def test_model_spec_parse(
    shorthand: str, backend: str, model: str | None, base_url: str | None
) -> None:
    spec = ModelSpec.parse(shorthand)
    assert (spec.backend, spec.model, spec.base_url) == (backend, model, base_url)


def test_model_mapping(task_dir: Path) -> None:
    path = write_task(
        task_dir,
        MINIMAL + "models:\n  task: {backend: openai, model: m, prices: {input: 0.5}}\n",
    )
    task = load_task(path).models.task
    assert (task.backend, task.model, task.prices.input, task.prices.output) == (
        "openai",
        "m",
        0.5,
        0.0,
    )


@pytest.mark.parametrize("shorthand", ["gpt4", "scripted", "http://h/v1"])
def test_bad_model_shorthand(task_dir: Path, shorthand: str) -> None:
    msg = config_error(write_task(task_dir, MINIMAL + f'models: {{task: "{shorthand}"}}\n'))
    assert "models.task" in msg
    assert f"unknown model {shorthand!r}" in msg


def test_bad_model_flag_in_plan(task_dir: Path) -> None:
    spec = load_task(write_task(task_dir, MINIMAL))
    with pytest.raises(ConfigError, match=r"^models.optimizer: unknown model 'gpt4'"):
        plan(spec, models={"optimizer": "gpt4"})


def test_model_flag_overrides_the_file(task_dir: Path) -> None:
    spec = load_task(write_task(task_dir, MINIMAL))
    p = plan(spec, models={"task": "openai:m@http://h/v1"})
    assert (p.task.models.task.backend, p.task.models.task.base_url) == ("openai", "http://h/v1")


def test_model_flag_does_not_change_the_callers_task(task_dir: Path) -> None:
    spec = load_task(write_task(task_dir, MINIMAL))
    plan(spec, models={"task": "openai:m@http://h/v1"})
    assert spec.models.task.backend == "embedded"


# ----------------------------------------------------------------------------- plan


def plan_for(task_dir: Path, extra: str = "", base: str = MINIMAL) -> Plan:
    return plan(load_task(write_task(task_dir, base + extra)))


def test_plan_of_a_minimal_task(task_dir: Path) -> None:
    p = plan(load_task(write_task(task_dir, MINIMAL)))
    assert [len(p.data.train), len(p.data.dev)] == [10, 6]
    assert p.data.test is not None and len(p.data.test) == 4
    assert p.data.notes == ()
    assert p.seed_prompt.instruction == "Give the opposite word."
    assert p.metric.name == "exact_match"
    assert p.optimizer.name == "ape"


def test_unknown_optimizer_lists_known_names(task_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown optimizer 'oprah'; known: ape, capo"):
        plan_for(task_dir, "optimizer: {name: oprah}\n")


def test_unknown_optimizer_flag_lists_known_names(task_dir: Path) -> None:
    spec = load_task(write_task(task_dir, MINIMAL))
    with pytest.raises(ConfigError, match=r"unknown optimizer 'nope'; known: ape, capo"):
        plan(spec, optimizer="nope")


def test_unknown_optimizer_option_is_named(task_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"optimizer: unknown option 'bogus' for ape"):
        plan_for(task_dir, "optimizer: {name: ape, bogus: 1}\n")


def test_wrong_optimizer_option_type_is_named(task_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"optimizer\.num_candidates: Input should be"):
        plan_for(task_dir, "optimizer: {name: ape, num_candidates: many}\n")


def test_optimizer_options_reach_the_optimizer(task_dir: Path) -> None:
    p = plan_for(task_dir, "optimizer: {name: ape, num_candidates: 3, rounds: 0}\n")
    config = p.optimizer.config.model_dump()
    assert (config["num_candidates"], config["rounds"]) == (3, 0)


def test_negative_budget_names_the_limit(task_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"budget\.task_calls must be positive"):
        plan_for(task_dir, "budget: {task_calls: -5}\n")


def test_unknown_budget_key(task_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"^budget: .*'task_cals'"):
        plan_for(task_dir, "budget: {task_cals: 5}\n")


def test_seed_prompt_naming_a_missing_field(task_dir: Path) -> None:
    with pytest.raises(TemplateError) as exc:
        plan_for(task_dir, 'seed_prompt: "Q: {question}"\n')
    msg = str(exc.value)
    assert "{question}" in msg
    assert "(seed_prompt, example train-" in msg
    assert "fields available: input" in msg


def test_seed_prompt_mapping_builds_the_prompt(task_dir: Path) -> None:
    p = plan_for(
        task_dir,
        "seed_prompt:\n"
        "  instruction: 'Opposite of: {input}'\n"
        "  system: Be brief.\n"
        "  output_format: One word.\n"
        "  demos: [{input: hot, output: cold}]\n",
    )
    sp = p.seed_prompt
    assert (sp.instruction, sp.system, sp.output_format) == (
        "Opposite of: {input}",
        "Be brief.",
        "One word.",
    )
    assert [(d.input, d.output) for d in sp.demos] == [("hot", "cold")]


def test_folder_and_split_files_together(task_dir: Path) -> None:
    base = "name: opposites\ndata: {folder: data, train: data/train.jsonl}\n"
    with pytest.raises(ConfigError, match="give either `folder` or `train`"):
        plan_for(task_dir, base=base)


def test_split_files_without_train(task_dir: Path) -> None:
    base = "name: opposites\nmetric: exact_match\ndata: {dev: data/dev.jsonl}\n"
    with pytest.raises(ConfigError, match="missing key 'train'"):
        plan_for(task_dir, base=base)


def test_without_dev_split_train_is_split_in_two(tmp_path: Path) -> None:
    write_split_folder(tmp_path / "data", train=11, dev=None, test=None)
    p = plan_for(tmp_path)
    train, dev = p.data.train, p.data.dev
    assert (len(train), len(dev)) == (5, 6)
    train_ids = {ex.id for ex in train}
    dev_ids = {ex.id for ex in dev}
    assert train_ids.isdisjoint(dev_ids)
    assert train_ids | dev_ids == {f"train-{i}" for i in range(11)}
    assert p.data.notes == (
        "no dev split: train was split 5/6 into train/dev",
        "no test split: the result reports dev scores only",
    )
    assert p.data.test is None


def test_split_without_dev_depends_on_the_seed(tmp_path: Path) -> None:
    write_split_folder(tmp_path / "data", train=20, dev=None)
    spec = load_task(write_task(tmp_path, MINIMAL))
    a = [ex.id for ex in plan(spec).data.train]
    again = [ex.id for ex in plan(spec).data.train]
    other = [ex.id for ex in plan(spec, seed=1).data.train]
    assert a == again
    assert a != other


def test_too_few_train_examples_without_dev(tmp_path: Path) -> None:
    write_split_folder(tmp_path / "data", train=3, dev=None)
    with pytest.raises(ConfigError, match="3 train examples and no dev split; need at least 4"):
        plan_for(tmp_path)


def test_data_limits_are_applied(task_dir: Path) -> None:
    base = "name: opposites\ndata: {folder: data, limits: {train: 2, dev: 3, test: 1}}\n"
    p = plan_for(task_dir, base=base)
    assert [ex.id for ex in p.data.train] == ["train-0", "train-1"]
    assert [ex.id for ex in p.data.dev] == ["dev-0", "dev-1", "dev-2"]
    assert p.data.test is not None
    assert [ex.id for ex in p.data.test] == ["test-0"]


def test_explicit_split_files_relative_to_the_task_file(task_dir: Path) -> None:
    base = (
        "name: opposites\nmetric: exact_match\nseed_prompt: 'Reverse: {input}'\n"
        "data: {train: data/train.jsonl, dev: data/dev.jsonl}\n"
    )
    p = plan_for(task_dir, base=base)
    assert (len(p.data.train), len(p.data.dev), p.data.test) == (10, 6, None)


def test_a_plan_is_frozen_once_made(task_dir: Path) -> None:
    import dataclasses

    p = plan(load_task(write_task(task_dir, MINIMAL)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed_prompt = p.seed_prompt  # type: ignore[misc]
    assert dataclasses.replace(p, protected=("x",)).protected == ("x",)  # a new plan
